//! Variable-size frames: one [`Sender`] and one [`Receiver`] pass byte strings of any length
//! up to [`Sender::max_frame`] through a ring whose capacity is in bytes.
//!
//! Each frame is one contiguous run of bytes in shared memory, taking its length rounded up to
//! 16 bytes, plus a 16-byte header. When the next frame does not fit before the end of the
//! ring, a padding record fills the end and the frame goes to the start as soon as the start
//! is free (if the receiver has not yet passed what was there, the sender sees the ring as full
//! until it does). A frame of up to [`Sender::max_frame`] bytes (the capacity less 16) fits once
//! the ring is empty.
//!
//! A receiver reads a [`Frame`] in place, and its bytes are freed when it drops (a frame leaked
//! with `mem::forget` is freed by the next receive); [`Receiver::recv_into`] copies one out
//! instead. A sender copies a frame in ([`Sender::send`]) or writes it in place:
//! [`Sender::loan`] reserves bytes in the ring, a [`Loan`] derefs to them (and is an
//! [`io::Write`](std::io::Write), so any serializer can write straight into shared memory), and
//! [`Loan::commit`] publishes a prefix. A dropped loan publishes nothing.
//!
//! ```
//! use shmchan::{frame, Options};
//! # let name = format!("doc-frame-{}", std::process::id());
//! // capacity is in bytes for frame channels (a power of two)
//! let mut tx = frame::Sender::create(&name, &Options::new().capacity(1 << 16))?;
//! let mut rx = frame::Receiver::open(&name, &Options::new())?; // usually another process
//!
//! tx.send(b"hello")?;
//! let mut loan = tx.loan(64)?;          // 64 bytes in shared memory
//! loan[..5].copy_from_slice(b"world");  // written in place
//! loan.commit(5);                       // publish the first 5
//!
//! assert_eq!(&*rx.recv()?, b"hello");   // read in place, freed when dropped
//! let mut buf = Vec::new();
//! assert_eq!(rx.recv_into(&mut buf)?, 5);
//! assert_eq!(buf, b"world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Trust
//!
//! A [`Frame`] and a [`Loan`] are references into shared memory: as stable as the peer is
//! honest. A peer that writes the ring against the protocol can change a frame's bytes while
//! you read them (formally a data race); lengths and positions read from shared memory are
//! checked, so it can never make a slice reach outside the ring or crash this process. Against
//! an untrusted peer, copy each frame out with [`Receiver::recv_into`] and validate the copy
//! (a plain copy: a peer writing the ring meanwhile is formally a data race there too, as for
//! typed payloads over 256 bytes, but the copy is taken once and never re-read).
//!
//! Handles take `&mut self`: one frame or one loan at a time per handle, enforced by the borrow
//! checker. In a child created by `fork`, copies of its parent's handles, frames and loans do
//! nothing to the ring (as for typed handles: they refuse, as disconnected).

use std::fmt;
use std::time::Duration;

use crate::chan::{Chan, Role, Spec, deadline_after};
use crate::error::{
    Error, RecvError, RecvTimeoutError, SendTimeoutError as TypedSendTimeout, TryRecvError,
    TrySendError as TypedTrySend,
};
use crate::handle;
use crate::layout::{Fingerprint, Kind};
use crate::options::{Options, WaitStrategy};
use crate::ring::Bytes;
use crate::ring::frame::{self as ring, Claim};
use crate::wait::Poll;

mod async_io;
pub use async_io::{FrameStream, RecvFuture};

fn spec(role: Role) -> Spec {
    spec_of(Kind::Frame, role)
}

/// The shape of a byte-ring channel of `kind` (frames, or a pipe).
pub(crate) fn spec_of(kind: Kind, role: Role) -> Spec {
    Spec {
        kind,
        role,
        fp: Fingerprint::bytes(),
        max_senders: 1,
        max_receivers: 1,
        overflow: (0, 0),
    }
}

fn corrupt(chan: &Chan) -> Error {
    Error::Incompatible {
        name: chan.name.clone(),
        backend: chan.backend.clone().unwrap_or_default(),
        detail: "corrupt header: the ring positions are impossible".into(),
    }
}

/// Why [`Sender::send`] (or [`Sender::loan`]) did not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The receiver is gone.
    Disconnected,
    /// The frame is longer than the channel takes ([`Sender::max_frame`]); nothing was sent.
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The largest frame the channel takes.
        max: usize,
    },
}

/// Why [`Sender::try_send`] (or [`Sender::try_loan`]) did not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// There is no room for the frame now.
    Full,
    /// The receiver is gone.
    Disconnected,
    /// The frame is longer than the channel takes ([`Sender::max_frame`]); nothing was sent.
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The largest frame the channel takes.
        max: usize,
    },
}

/// Why [`Sender::send_timeout`] (or [`Sender::loan_timeout`]) did not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendTimeoutError {
    /// There was no room for the frame within the timeout.
    Timeout,
    /// The receiver is gone.
    Disconnected,
    /// The frame is longer than the channel takes ([`Sender::max_frame`]); nothing was sent.
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The largest frame the channel takes.
        max: usize,
    },
}

fn too_large(f: &mut fmt::Formatter<'_>, len: usize, max: usize) -> fmt::Result {
    write!(
        f,
        "a frame of {len} bytes is larger than the channel's maximum of {max} bytes"
    )
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SendError::Disconnected => f.write_str("sending on a disconnected channel"),
            SendError::TooLarge { len, max } => too_large(f, len, max),
        }
    }
}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TrySendError::Full => f.write_str("sending on a full channel"),
            TrySendError::Disconnected => f.write_str("sending on a disconnected channel"),
            TrySendError::TooLarge { len, max } => too_large(f, len, max),
        }
    }
}

impl fmt::Display for SendTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SendTimeoutError::Timeout => f.write_str("timed out waiting on send operation"),
            SendTimeoutError::Disconnected => f.write_str("sending on a disconnected channel"),
            SendTimeoutError::TooLarge { len, max } => too_large(f, len, max),
        }
    }
}

impl std::error::Error for SendError {}
impl std::error::Error for TrySendError {}
impl std::error::Error for SendTimeoutError {}

impl From<SendTimeoutError> for SendError {
    fn from(e: SendTimeoutError) -> Self {
        match e {
            // Only `send_timeout` times out; a blocking send has no timeout to report.
            SendTimeoutError::Timeout | SendTimeoutError::Disconnected => SendError::Disconnected,
            SendTimeoutError::TooLarge { len, max } => SendError::TooLarge { len, max },
        }
    }
}

/// Create a frame channel inside this process (on the heap, no name): `capacity` bytes,
/// rounded up to a power of two.
///
/// # Errors
/// [`Error::InvalidOptions`] if `capacity` is 0 or above [`Options::MAX_CAPACITY`].
///
/// ```
/// let (mut tx, mut rx) = shmchan::frame::channel(256)?;
/// std::thread::spawn(move || tx.send(b"ping").unwrap());
/// assert_eq!(&*rx.recv()?, b"ping");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn channel(capacity: usize) -> Result<(Sender, Receiver), Error> {
    let (a, b) = Chan::heap_pair(capacity, &spec(Role::Sender))?;
    let wait = WaitStrategy::default();
    Ok((Sender::from_chan(a, wait)?, Receiver::from_chan(b, wait)?))
}

/// The sending end of a frame channel. `Send`, not `Sync`; its calls take `&mut self` (a
/// [`Loan`] borrows it). Dropping it disconnects the channel: the receiver drains what was
/// sent, then gets `Disconnected`, until another sender opens the channel (an uncommitted
/// loan of a sender that was killed is never delivered).
pub struct Sender {
    ring: ring::Producer,
    bytes: Bytes,
    wait: WaitStrategy,
    chan: Chan,
    /// Frames committed, for the checkpoint (see `commit`).
    sends: u64,
}

/// The receiving end of a frame channel. `Send`, not `Sync`; its calls take `&mut self` (a
/// [`Frame`] borrows it). Dropping it disconnects the channel until another receiver opens it;
/// a frame this receiver's process was killed holding is delivered again to that one.
pub struct Receiver {
    ring: ring::Consumer,
    bytes: Bytes,
    wait: WaitStrategy,
    chan: Chan,
    /// The length of the frame a [`Frame`] lent out, until it is released: a `Frame` leaked
    /// with `mem::forget` is released by the next receive instead of being received again.
    held: Option<u64>,
}

impl Sender {
    /// Create the frame channel `name` (exclusively) and attach as its sender. The capacity
    /// ([`Options::capacity`]) is in bytes.
    ///
    /// # Errors
    /// As [`spsc::Sender::create`](crate::spsc::Sender::create).
    ///
    /// ```
    /// use shmchan::{frame, Options};
    /// # let name = format!("doc-frame-create-{}", std::process::id());
    /// let tx = frame::Sender::create(&name, &Options::new().capacity(4096))?;
    /// assert_eq!(tx.capacity(), 4096);
    /// assert_eq!(tx.max_frame(), 4080); // the capacity less one 16-byte record header
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &Options) -> Result<Self, Error> {
        Self::from_chan(Chan::create(name, opts, &spec(Role::Sender))?, opts.wait)
    }

    /// Open the existing frame channel `name` and attach as its sender.
    ///
    /// # Errors
    /// As [`spsc::Sender::open`](crate::spsc::Sender::open); [`Error::Incompatible`] if the
    /// channel is not a frame channel.
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        Self::from_chan(Chan::open(name, opts, &spec(Role::Sender))?, opts.wait)
    }

    pub(crate) fn from_chan(chan: Chan, wait: WaitStrategy) -> Result<Self, Error> {
        let bytes = Bytes::new(chan.region(), &chan.geo);
        let ring = ring::Producer::new(chan.header(), &bytes, chan.geo.capacity, chan.key())
            .map_err(|_| corrupt(&chan))?;
        Ok(Sender {
            ring,
            bytes,
            wait,
            chan,
            sends: 0,
        })
    }

    /// The largest frame this channel takes, in bytes: the capacity less one 16-byte record
    /// header.
    pub fn max_frame(&self) -> usize {
        self.ring.max_frame() as usize
    }

    /// One attempt at finding room for `len` bytes.
    #[inline(always)]
    fn poll_claim(&self, len: u64, probe: bool) -> Poll<Result<Claim, ()>> {
        handle::poll_send(&self.chan, (), probe, |_| {
            // SAFETY: this handle is the channel's only sender (the endpoint table admits one).
            unsafe { self.ring.claim(self.chan.header(), &self.bytes, len) }
        })
    }

    /// Check the length against the channel's maximum.
    fn check_len(&self, len: usize) -> Result<u64, (usize, usize)> {
        if len > self.max_frame() {
            Err((len, self.max_frame()))
        } else {
            Ok(len as u64)
        }
    }

    /// Wait until there is room for `len` bytes, or the deadline.
    #[inline(always)]
    fn claim_deadline(
        &mut self,
        len: usize,
        deadline: Option<std::time::Instant>,
    ) -> Result<Claim, SendTimeoutError> {
        let len = self
            .check_len(len)
            .map_err(|(len, max)| SendTimeoutError::TooLarge { len, max })?;
        handle::send_deadline(&self.chan, &self.wait, (), deadline, |(), probe| {
            self.poll_claim(len, probe)
        })
        .map_err(|e| match e {
            TypedSendTimeout::Timeout(()) => SendTimeoutError::Timeout,
            TypedSendTimeout::Disconnected(()) => SendTimeoutError::Disconnected,
        })
    }

    fn try_claim(&mut self, len: usize) -> Result<Claim, TrySendError> {
        let len = self
            .check_len(len)
            .map_err(|(len, max)| TrySendError::TooLarge { len, max })?;
        handle::try_send(&self.chan, (), |(), probe| self.poll_claim(len, probe)).map_err(|e| {
            match e {
                TypedTrySend::Full(()) => TrySendError::Full,
                TypedTrySend::Disconnected(()) => TrySendError::Disconnected,
            }
        })
    }

    /// Copy `frame` into the claimed room and publish it.
    #[inline(always)]
    fn put(&mut self, claim: Claim, frame: &[u8]) {
        let payload = self.bytes.at(claim.pos.wrapping_add(ring::HEADER));
        // SAFETY: the claim gave us `claim.len >= frame.len()` contiguous bytes at `payload`,
        // inside the ring, which nobody reads until we commit; records start 16-aligned and
        // their payloads are padded to 16 bytes (`ring::frame::ALIGN`), so `payload` is 8-aligned
        // and the padding is ours; `frame` is a distinct slice of this process's memory. The
        // copy is race-free: a receiver reading the bytes meanwhile (only a broken or hostile
        // one can) sees each byte old or new.
        unsafe { crate::ring::copy::copy_to_shared(payload, frame.as_ptr(), frame.len()) };
        self.commit(claim, frame.len() as u64);
    }

    /// Publish the first `len` bytes of a claim.
    #[inline(always)]
    fn commit(&mut self, claim: Claim, len: u64) {
        // SAFETY: `claim` is this producer's latest, and `len <= claim.len` (callers check).
        unsafe {
            self.ring
                .commit(self.chan.header(), &self.bytes, claim, len)
        };
        // Every `CHECKPOINT` frames, as typed senders do every so many messages: probe the
        // receiver if a probe is due (`Chan::checkpoint`), so that frames sent to a dead,
        // idle receiver stop succeeding within 40 ms or 64 frames.
        self.sends = self.sends.wrapping_add(1);
        if self.sends % crate::ring::CHECKPOINT == 0 {
            self.chan.checkpoint();
        }
    }

    /// Send a copy of `frame`, waiting for room as long as it takes. An empty frame is a
    /// frame too.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if `frame` is longer than [`max_frame`](Self::max_frame)
    /// (nothing is sent); [`SendError::Disconnected`] if the receiver is gone.
    ///
    /// ```
    /// let (mut tx, mut rx) = shmchan::frame::channel(64)?;
    /// tx.send(&[7; 48])?; // the most a 64-byte ring takes: all of it
    /// assert_eq!(rx.recv()?.len(), 48);
    /// tx.send(b"")?;
    /// assert_eq!(rx.recv()?.len(), 0);
    /// let too_long = tx.send(&[0; 49]);
    /// assert!(matches!(too_long, Err(shmchan::frame::SendError::TooLarge { len: 49, max: 48 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline(always)]
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        let claim = self.claim_deadline(frame.len(), None)?;
        self.put(claim, frame);
        Ok(())
    }

    /// Send a copy of `frame` if there is room now.
    ///
    /// # Errors
    /// [`TrySendError::Full`], [`TrySendError::Disconnected`], [`TrySendError::TooLarge`].
    pub fn try_send(&mut self, frame: &[u8]) -> Result<(), TrySendError> {
        let claim = self.try_claim(frame.len())?;
        self.put(claim, frame);
        Ok(())
    }

    /// Send a copy of `frame`, waiting for room at most `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`], [`SendTimeoutError::Disconnected`],
    /// [`SendTimeoutError::TooLarge`].
    pub fn send_timeout(
        &mut self,
        frame: &[u8],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        let claim = self.claim_deadline(frame.len(), deadline_after(timeout))?;
        self.put(claim, frame);
        Ok(())
    }

    /// Reserve `len` bytes in the ring, waiting for room as long as it takes, to write a frame
    /// in place (no copy). The [`Loan`] derefs to the bytes; [`Loan::commit`] publishes a
    /// prefix of them; dropping it publishes nothing.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// ```
    /// use std::io::Write;
    /// let (mut tx, mut rx) = shmchan::frame::channel(1024)?;
    /// let mut loan = tx.loan(100)?;
    /// write!(loan, "{} + {} = {}", 1, 2, 1 + 2)?; // `Loan` is an `io::Write` cursor
    /// loan.commit_written();
    /// assert_eq!(&*rx.recv()?, b"1 + 2 = 3");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>, SendError> {
        let claim = self.claim_deadline(len, None)?;
        Ok(Loan::new(self, claim))
    }

    /// Reserve `len` bytes if there is room now (see [`loan`](Self::loan)).
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>, TrySendError> {
        let claim = self.try_claim(len)?;
        Ok(Loan::new(self, claim))
    }

    /// Reserve `len` bytes, waiting for room at most `timeout` (see [`loan`](Self::loan)).
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn loan_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Loan<'_>, SendTimeoutError> {
        let claim = self.claim_deadline(len, deadline_after(timeout))?;
        Ok(Loan::new(self, claim))
    }

    pub(crate) fn chan(&self) -> &Chan {
        &self.chan
    }

    pub(crate) fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Bytes in the ring now, frames, record headers and padding included (a snapshot).
    pub fn len(&self) -> usize {
        crate::ring::len(self.chan.header(), self.chan.geo.capacity)
    }

    /// Is the ring empty now?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring's size in bytes (the requested capacity rounded up to a power of two).
    pub fn capacity(&self) -> usize {
        self.chan.geo.capacity as usize
    }

    crate::handle::liveness_queries!("receiver");

    crate::handle::wait_for_peer!(
        "receiver",
        space_bell,
        r#"
```
use std::time::Duration;
use shmchan::{frame, Options};
# let name = format!("doc-frame-wait-{}", std::process::id());
let tx = frame::Sender::create(&name, &Options::new())?;
let rx = frame::Receiver::open(&name, &Options::new())?; // usually another process
tx.wait_for_peer(Duration::from_secs(1))?;
# drop(rx);
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

/// Bytes reserved in the ring by [`Sender::loan`], to write a frame in place. Derefs to the
/// reserved bytes (whatever they held before: overwrite what you publish), and is an
/// [`io::Write`](std::io::Write) cursor over them. [`commit`](Self::commit) publishes a
/// prefix; dropping the loan publishes nothing.
pub struct Loan<'a> {
    sender: &'a mut Sender,
    claim: Claim,
    /// How far `io::Write` has written.
    written: usize,
}

impl<'a> Loan<'a> {
    fn new(sender: &'a mut Sender, claim: Claim) -> Loan<'a> {
        Loan {
            sender,
            claim,
            written: 0,
        }
    }

    /// Publish the first `n` bytes as a frame. (In a child created by `fork`, a copy of its
    /// parent's loan publishes nothing: the ring is its parent's.)
    ///
    /// # Panics
    /// If `n` is larger than the loan (a bug in the caller, as slicing past the end would be).
    pub fn commit(self, n: usize) {
        assert!(
            n as u64 <= self.claim.len,
            "commit({n}) of a loan of {} bytes",
            self.claim.len
        );
        let (sender, claim) = (self.sender, self.claim);
        if !sender.chan.forked() {
            sender.commit(claim, n as u64);
        }
    }

    /// Publish what was written through [`io::Write`](std::io::Write) (the first
    /// `written()` bytes) as a frame.
    pub fn commit_written(self) {
        let n = self.written;
        self.commit(n);
    }

    /// How many bytes [`io::Write`](std::io::Write) has written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// The sender this loan borrows, for its queries (`len`, `is_connected`, ...) while the
    /// loan is out.
    pub fn sender(&self) -> &Sender {
        self.sender
    }
}

impl std::ops::Deref for Loan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let ptr = self
            .sender
            .bytes
            .at(self.claim.pos.wrapping_add(ring::HEADER));
        // SAFETY: the claim gave this loan `claim.len` contiguous bytes inside the ring, which
        // no peer reads or writes until they are committed (a peer breaking the protocol can
        // only change values: see the module docs), and which live as long as the sender.
        unsafe { std::slice::from_raw_parts(ptr, self.claim.len as usize) }
    }
}

impl std::ops::DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let ptr = self
            .sender
            .bytes
            .at(self.claim.pos.wrapping_add(ring::HEADER));
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(ptr, self.claim.len as usize) }
    }
}

impl std::io::Write for Loan<'_> {
    /// Write at the cursor; `Ok(0)` once the loan is full.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let at = self.written;
        let n = buf.len().min(self.len() - at);
        self[at..at + n].copy_from_slice(&buf[..n]);
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("frame::Loan")
            .field("len", &self.claim.len)
            .field("written", &self.written)
            .finish()
    }
}

impl Receiver {
    /// Create the frame channel `name` (exclusively) and attach as its receiver.
    ///
    /// # Errors
    /// As [`Sender::create`].
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &Options) -> Result<Self, Error> {
        Self::from_chan(Chan::create(name, opts, &spec(Role::Receiver))?, opts.wait)
    }

    /// Open the existing frame channel `name` and attach as its receiver.
    ///
    /// # Errors
    /// As [`Sender::open`].
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        Self::from_chan(Chan::open(name, opts, &spec(Role::Receiver))?, opts.wait)
    }

    pub(crate) fn from_chan(chan: Chan, wait: WaitStrategy) -> Result<Self, Error> {
        let ring = ring::Consumer::new(chan.header(), chan.geo.capacity, chan.key())
            .map_err(|_| corrupt(&chan))?;
        Ok(Receiver {
            ring,
            bytes: Bytes::new(chan.region(), &chan.geo),
            wait,
            chan,
            held: None,
        })
    }

    /// Release a frame a leaked [`Frame`] still holds (see the `held` field).
    #[inline(always)]
    fn release_leaked(&mut self) {
        if let Some(len) = self.held.take() {
            self.release(len);
        }
    }

    /// One attempt: the next frame's `(position, length)`, a disconnect, or `Pending`.
    #[inline(always)]
    fn poll(&self, probe: bool) -> Poll<Result<(u64, u64), ()>> {
        handle::poll_recv(&self.chan, probe, |_| {
            // SAFETY: this handle is the channel's only receiver (the endpoint table admits one).
            unsafe { self.ring.peek(self.chan.header(), &self.bytes) }
        })
    }

    #[inline(always)]
    fn frame(&mut self, (pos, len): (u64, u64)) -> Frame<'_> {
        self.held = Some(len);
        Frame {
            ptr: self.bytes.at(pos),
            len: len as usize,
            rx: self,
        }
    }

    /// The next frame's payload `(position, length)`, waiting until `deadline` (for the pipe,
    /// which reads frames in part and frees them itself with [`release`](Self::release)).
    pub(crate) fn next_frame(
        &mut self,
        deadline: Option<std::time::Instant>,
    ) -> Result<(u64, u64), RecvTimeoutError> {
        self.release_leaked();
        handle::recv_deadline(&self.chan, &self.wait, deadline, |p| self.poll(p))
    }

    /// The next frame's payload `(position, length)` if one is there now, without waiting
    /// (probing the sender when a probe is due, as `try_recv` does, so that a sender killed
    /// meanwhile is seen: `Disconnected` once everything it sent was read).
    pub(crate) fn try_next_frame(&mut self) -> Result<(u64, u64), crate::error::TryRecvError> {
        self.release_leaked();
        handle::try_recv(&self.chan, |p| self.poll(p))
    }

    /// The bytes of a frame [`next_frame`](Self::next_frame) returned.
    ///
    /// # Safety
    /// `(pos, len)` came from `next_frame` and was not released since; the slice must be
    /// dropped before it is.
    pub(crate) unsafe fn frame_bytes(&self, pos: u64, len: u64) -> &[u8] {
        // SAFETY: as for `Frame::deref`, per this function's contract.
        unsafe { std::slice::from_raw_parts(self.frame_ptr(pos), len as usize) }
    }

    /// Where the bytes of a frame [`next_frame`](Self::next_frame) returned at `pos` start,
    /// for a copy that must not go through a `&[u8]` into the ring.
    pub(crate) fn frame_ptr(&self, pos: u64) -> *const u8 {
        self.bytes.at(pos)
    }

    /// Free the frame [`next_frame`](Self::next_frame) returned (of `len` bytes). Nothing in a
    /// forked child's copy of the receiver: the frame is its parent's.
    pub(crate) fn release(&mut self, len: u64) {
        if !self.chan.forked() {
            self.ring.release(self.chan.header(), len);
        }
    }

    /// Receive the next frame, waiting as long as it takes. The [`Frame`] reads the bytes in
    /// place; they are freed for the sender when it drops.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and the sender is gone.
    #[inline]
    pub fn recv(&mut self) -> Result<Frame<'_>, RecvError> {
        self.release_leaked();
        let at = handle::recv_deadline(&self.chan, &self.wait, None, |p| self.poll(p))
            .map_err(|_| RecvError)?;
        Ok(self.frame(at))
    }

    /// Receive the next frame if there is one now.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], or [`TryRecvError::Disconnected`] if the ring is empty and
    /// the sender is gone.
    pub fn try_recv(&mut self) -> Result<Frame<'_>, TryRecvError> {
        self.release_leaked();
        let at = handle::try_recv(&self.chan, |p| self.poll(p))?;
        Ok(self.frame(at))
    }

    /// Receive the next frame, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], or [`RecvTimeoutError::Disconnected`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Frame<'_>, RecvTimeoutError> {
        self.release_leaked();
        let deadline = deadline_after(timeout);
        let at = handle::recv_deadline(&self.chan, &self.wait, deadline, |p| self.poll(p))?;
        Ok(self.frame(at))
    }

    /// Receive the next frame into `buf` (cleared first, then the frame copied in; its
    /// allocation is reused), waiting as long as it takes; returns the frame's length.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and the sender is gone.
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
        let frame = self.recv()?;
        let len = frame.len;
        buf.clear();
        buf.reserve(len);
        // SAFETY: the frame's `len` bytes at `frame.ptr` lie in the mapping (the ring checked
        // its record); `buf` has room for `len` bytes and is ours alone; a `Vec` never overlaps
        // a mapping. The bytes are read through the raw pointer, never a `&[u8]`, with the
        // race-free copy, so a sender writing the record meanwhile (only a broken or hostile
        // one can) leaves odd bytes, not undefined behaviour.
        unsafe {
            crate::ring::copy::copy_from_shared(buf.as_mut_ptr(), frame.ptr, len);
            buf.set_len(len);
        }
        Ok(len)
    }

    pub(crate) fn chan(&self) -> &Chan {
        &self.chan
    }

    pub(crate) fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Bytes in the ring now, frames, record headers and padding included (a snapshot).
    pub fn len(&self) -> usize {
        crate::ring::len(self.chan.header(), self.chan.geo.capacity)
    }

    /// Is the ring empty now?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring's size in bytes.
    pub fn capacity(&self) -> usize {
        self.chan.geo.capacity as usize
    }

    crate::handle::liveness_queries!("sender");

    crate::handle::wait_for_peer!(
        "sender",
        data_bell,
        r#"
```
use std::time::Duration;
use shmchan::{frame, Options, WaitForPeerError};
# let name = format!("doc-frame-rx-wait-{}", std::process::id());
let rx = frame::Receiver::create(&name, &Options::new())?;
let wait = Duration::from_millis(10);
assert_eq!(rx.wait_for_peer(wait), Err(WaitForPeerError::Timeout));
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

/// A received frame, read in place in shared memory; its bytes are freed for the sender when
/// it drops. Derefs to the frame's bytes. See the module docs on trust.
pub struct Frame<'a> {
    rx: &'a mut Receiver,
    ptr: *mut u8,
    len: usize,
}

impl std::ops::Deref for Frame<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `peek` checked the frame lies inside the ring, before its end, and its stamp
        // says it is published; the sender does not write it until we release it (on drop),
        // and the ring lives as long as the receiver this frame borrows. A peer breaking the protocol can only change
        // the values (see the module docs).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Frame<'_> {
    /// The receiver this frame borrows, for its queries (`len`, `is_connected`, ...) while the
    /// frame is held.
    ///
    /// ```
    /// let (mut tx, mut rx) = shmchan::frame::channel(1024)?;
    /// tx.send(b"one")?;
    /// tx.send(b"two")?;
    /// let f = rx.recv()?;
    /// assert_eq!(&*f, b"one");
    /// assert!(f.receiver().len() > 6); // bytes in the ring: both frames, with their headers
    /// assert!(f.receiver().is_connected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn receiver(&self) -> &Receiver {
        self.rx
    }
}

impl Drop for Frame<'_> {
    /// Free the frame's bytes for the sender (not in a forked child's copy: they are its
    /// parent's).
    #[inline]
    fn drop(&mut self) {
        self.rx.held = None;
        self.rx.release(self.len as u64);
    }
}

impl fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("frame::Frame")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("frame::Sender")
            .field("name", &self.chan.name)
            .field("backend", &self.chan.backend)
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("frame::Receiver")
            .field("name", &self.chan.name)
            .field("backend", &self.chan.backend)
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// Positions near the end of `u64` (a peer may leave any 16-aligned value there: a
    /// channel's positions only ever grow): sending, lending and receiving wrap around it, with
    /// overflow checks on in debug builds.
    #[test]
    fn positions_wrap_around_the_end_of_u64() {
        let (a, b) = Chan::heap_pair(4096, &spec(Role::Sender)).unwrap();
        let p = u64::MAX - 31; // 16-aligned, 32 bytes before the wrap
        a.header().tail.store(p, Ordering::Relaxed);
        a.header().head.store(p, Ordering::Relaxed);
        let wait = WaitStrategy::default();
        let (mut tx, mut rx) = (
            Sender::from_chan(a, wait).unwrap(),
            Receiver::from_chan(b, wait).unwrap(),
        );
        for i in 0..200u8 {
            let frame = vec![i; (i as usize * 37) % 300];
            if i % 2 == 0 {
                tx.send(&frame).unwrap();
            } else {
                let mut loan = tx.loan(frame.len() + 5).unwrap();
                loan[..frame.len()].copy_from_slice(&frame);
                loan.commit(frame.len());
            }
            assert_eq!(&*rx.recv().unwrap(), frame.as_slice(), "frame {i}");
        }
        assert!(a_wrapped(&rx), "the positions went past u64::MAX");
    }

    fn a_wrapped(rx: &Receiver) -> bool {
        rx.chan.header().head.load(Ordering::Relaxed) < 1 << 20
    }
}
