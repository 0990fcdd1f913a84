//! Frame topics: [`FramePublisher`] and [`FrameSubscriber`] (typed topics' protocol, with a
//! frame's length in the slot beside its bytes).

use std::fmt;
use std::time::{Duration, Instant};

use super::{
    Overflow, PublisherCore, RecvError, RecvTimeoutError, Start, SubscriberCore, TryRecvError, spec,
};
use crate::chan::{Chan, Role, deadline_after};
use crate::error::{Error, WaitForPeerError};
use crate::frame::{SendError, SendTimeoutError, TrySendError};
use crate::layout::Fingerprint;
use crate::options::{Options, WaitStrategy};
use crate::ring::Slots;
use crate::wait::{Poll, wait_until};

/// The largest frame a frame topic takes unless [`Options::max_frame`] says otherwise.
pub const DEFAULT_MAX_FRAME: usize = 1024;
/// The largest [`Options::max_frame`] a frame topic accepts (1 GiB).
pub const MAX_FRAME: usize = 1 << 30;

/// The payload a frame publisher creates a topic with, or why it cannot.
fn created(opts: &Options) -> Result<Fingerprint, Error> {
    match opts.max_frame.unwrap_or(DEFAULT_MAX_FRAME) {
        0 => Err(Error::InvalidOptions {
            reason: "max_frame 0: a frame topic takes frames of at least 1 byte".into(),
        }),
        n if n > MAX_FRAME => Err(Error::InvalidOptions {
            reason: format!("max_frame {n} is above the maximum of {MAX_FRAME} bytes"),
        }),
        n => Ok(Fingerprint::frames(n)),
    }
}

/// Loom only: an in-process frame topic (capacity, overflow mode, `max_subscribers`,
/// `max_frame`) with its publisher and one subscriber (starting at the latest).
#[cfg(loom)]
#[doc(hidden)]
pub fn loom_frame_channel(
    capacity: usize,
    overflow: Overflow,
    max_subscribers: usize,
    max_frame: usize,
) -> Result<(FramePublisher, FrameSubscriber), Error> {
    let opts = Options::new()
        .overflow(overflow)
        .max_subscribers(max_subscribers)
        .max_frame(max_frame);
    let spec = spec(created(&opts)?, Role::Sender, &opts);
    let (a, b) = Chan::heap_pair(capacity, &spec)?;
    Ok((
        FramePublisher::from_chan(a, WaitStrategy::Park, None)?,
        FrameSubscriber::from_chan(b, Start::Latest, WaitStrategy::Park, None)?,
    ))
}

#[cfg(loom)]
impl crate::chan::LoomReopen {
    /// Loom only: a new subscriber of the frame topic, starting where `start` says.
    pub fn broadcast_frame_subscriber(&self, start: Start) -> Result<FrameSubscriber, Error> {
        let chan = self.join(&spec(
            Fingerprint::any_frames(),
            Role::Receiver,
            &Options::new(),
        ))?;
        FrameSubscriber::from_chan(chan, start, WaitStrategy::Park, None)
    }
}

/// The publisher of a broadcast frame topic: byte frames of any length up to the topic's
/// largest ([`Options::max_frame`]). `Send` but not `Sync`; one per topic.
///
/// The ring, the modes and the subscribers' guarantees are those of typed topics (see the
/// [module docs](crate::broadcast)): each slot holds one frame, its length then its bytes, so
/// a frame topic of `capacity` slots maps about `capacity * (max_frame + 16)` bytes whatever
/// the frames' sizes (iceoryx2's choice for its slices; a byte ring would hold more small
/// frames in the same memory, but a subscriber lapped in a byte ring cannot find the next
/// frame's start by itself, and a frame's stamp, read again after the copy, would not show
/// that the publisher wrote over the middle of it from another frame's start).
///
/// A subscriber copies each frame out with the crate's race-free copy, and keeps the copy only
/// if the slot's stamp is the same after it: [`FrameSubscriber::recv_into`] into a buffer it
/// reuses, or [`FrameSubscriber::recv`] into a new `Vec`. There is no in-place read: in
/// Overwrite mode the publisher may write over any slot at any time, and in Block mode over the
/// slot of a subscriber it evicts.
///
/// ```
/// use shmchan::{broadcast, Options};
/// # let name = format!("doc-bcast-frames-{}", std::process::id());
/// let opts = Options::new().capacity(64).max_frame(4096);
/// let mut tx = broadcast::FramePublisher::create(&name, &opts)?;
/// // in another process, usually:
/// let mut rx = broadcast::FrameSubscriber::open(&name, &Options::new())?;
/// tx.send(b"hello")?;
/// let mut loan = tx.loan(4096)?;          // up to 4096 bytes, in place
/// loan[..5].copy_from_slice(b"world");
/// loan.commit(5);                         // publish the first 5
/// assert_eq!(rx.recv()?, b"hello");
/// let mut buf = Vec::new();
/// assert_eq!(rx.recv_into(&mut buf)?, 5); // reuses `buf`
/// assert_eq!(buf, b"world");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FramePublisher {
    core: PublisherCore,
}

impl FramePublisher {
    /// Create the frame topic `name` (frames of up to [`Options::max_frame`] bytes,
    /// [`Options::capacity`] of them in the ring) and attach as its publisher, or take over a
    /// topic whose publisher is gone, as [`Publisher::create`](super::Publisher::create) does.
    /// A publisher taking a topic over takes its largest frame, unless `opts` sets one (then
    /// it must be the topic's).
    ///
    /// # Errors
    /// As [`Publisher::create`](super::Publisher::create); [`Error::InvalidOptions`] for a
    /// `max_frame` of 0 or above [`MAX_FRAME`]; [`Error::Incompatible`] for a typed topic, or
    /// one of another `max_frame` if `opts` sets one.
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &Options) -> Result<Self, Error> {
        let create = spec(created(opts)?, Role::Sender, opts);
        let take_over = spec(Self::wanted(opts), Role::Sender, opts);
        PublisherCore::create(name, opts, &create, &take_over).map(|core| FramePublisher { core })
    }

    /// Open the existing frame topic `name` as its publisher (its previous publisher is gone).
    ///
    /// # Errors
    /// As [`create`](Self::create), and [`Error::NotFound`].
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        PublisherCore::open(name, opts, &spec(Self::wanted(opts), Role::Sender, opts))
            .map(|core| FramePublisher { core })
    }

    /// The payload an opener accepts: the one `opts` asks for, or the topic's.
    fn wanted(opts: &Options) -> Fingerprint {
        match opts.max_frame {
            Some(n) => Fingerprint::frames(n),
            None => Fingerprint::any_frames(),
        }
    }

    #[cfg(loom)]
    pub(crate) fn from_chan(
        chan: Chan,
        wait: WaitStrategy,
        opts: Option<&Options>,
    ) -> Result<Self, Error> {
        PublisherCore::from_chan(chan, wait, opts).map(|core| FramePublisher { core })
    }

    /// The largest frame the topic takes ([`Options::max_frame`] rounded up to a multiple of
    /// 8).
    pub fn max_frame(&self) -> usize {
        self.core.slots.max_frame()
    }

    /// Is `len` too long a frame? `(len, max)` if so.
    fn too_large(&self, len: usize) -> Option<(usize, usize)> {
        (len > self.max_frame()).then(|| (len, self.max_frame()))
    }

    /// One attempt at publishing `frame` (not too long): `Ready` when sent, `Pending` when a
    /// Block-mode topic has no room.
    #[inline]
    fn poll(&self, frame: &[u8], probe: bool) -> Poll<()> {
        let c = &self.core;
        if !c.room(probe) {
            return Poll::Pending;
        }
        let p = c.ring.position();
        c.ring.begin(&c.slots, p);
        c.slots.store_frame(p, frame);
        c.ring.end(c.chan.header(), &c.slots, p);
        Poll::Ready(())
    }

    /// Publish `frame` to every subscriber. In Overwrite mode (the default) this never waits;
    /// in Block mode it waits for room (for the slowest live subscriber, or its eviction).
    ///
    /// # Errors
    /// [`SendError::TooLarge`] for a frame longer than [`max_frame`](Self::max_frame);
    /// [`SendError::Disconnected`] only in a forked child's copy of the publisher (a topic
    /// with no subscriber keeps the frame as history).
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        self.send_deadline(frame, None).map_err(SendError::from)
    }

    /// Publish `frame` without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] in Block mode when the slowest live subscriber is a ring behind;
    /// [`TrySendError::TooLarge`]; [`TrySendError::Disconnected`] in a forked child's copy.
    pub fn try_send(&mut self, frame: &[u8]) -> Result<(), TrySendError> {
        if let Some((len, max)) = self.too_large(frame.len()) {
            return Err(TrySendError::TooLarge { len, max });
        }
        if self.core.chan.forked() {
            return Err(TrySendError::Disconnected);
        }
        match self.poll(frame, false) {
            Poll::Ready(()) => Ok(()),
            Poll::Pending if self.core.chan.probe_due() => match self.poll(frame, true) {
                Poll::Ready(()) => Ok(()),
                Poll::Pending => Err(TrySendError::Full),
            },
            Poll::Pending => Err(TrySendError::Full),
        }
    }

    /// Publish `frame`, waiting at most `timeout` for room (Block mode).
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] if there was no room in time; the others as
    /// [`try_send`](Self::try_send).
    pub fn send_timeout(
        &mut self,
        frame: &[u8],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        self.send_deadline(frame, deadline_after(timeout))
    }

    fn send_deadline(
        &mut self,
        frame: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError> {
        if let Some((len, max)) = self.too_large(frame.len()) {
            return Err(SendTimeoutError::TooLarge { len, max });
        }
        if self.core.chan.forked() {
            return Err(SendTimeoutError::Disconnected);
        }
        if let Poll::Ready(()) = self.poll(frame, false) {
            return Ok(());
        }
        let bell = &self.core.chan.header().space_bell;
        match wait_until(bell, self.core.wait, deadline, |probe| {
            self.poll(frame, probe)
        }) {
            Some(()) => Ok(()),
            None => Err(SendTimeoutError::Timeout),
        }
    }

    /// Lend the next slot's `len` bytes (at most [`max_frame`](Self::max_frame)), to write a
    /// frame in place; [`FrameLoan::commit`] publishes a prefix of them, and a loan dropped
    /// without a commit publishes nothing. Waits for room in Block mode. A loan is an
    /// [`io::Write`](std::io::Write) too.
    ///
    /// As with typed loans, a subscriber the publisher laps in Overwrite mode may read the
    /// slot while the loan is written: it throws what it read away (the slot's stamp says it
    /// is being written), but formally that read races the loan's writes.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] for `len` above `max_frame`; [`SendError::Disconnected`] in a
    /// forked child's copy.
    #[cfg(not(loom))]
    pub fn loan(&mut self, len: usize) -> Result<FrameLoan<'_>, SendError> {
        self.loan_until(len, None).map_err(|e| match e {
            SendTimeoutError::TooLarge { len, max } => SendError::TooLarge { len, max },
            _ => SendError::Disconnected, // no deadline: never `Timeout`
        })
    }

    /// As [`loan`](Self::loan), without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] in Block mode when the slowest live subscriber is a ring behind;
    /// the others as [`loan`](Self::loan).
    ///
    /// ```
    /// use shmchan::{broadcast, Options};
    /// # let name = format!("doc-bcast-try-loan-{}", std::process::id());
    /// let mut tx = broadcast::FramePublisher::create(&name, &Options::new())?;
    /// let mut loan = tx.try_loan(5)?;
    /// loan.copy_from_slice(b"hello");
    /// loan.commit(5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn try_loan(&mut self, len: usize) -> Result<FrameLoan<'_>, TrySendError> {
        if let Some((len, max)) = self.too_large(len) {
            return Err(TrySendError::TooLarge { len, max });
        }
        if self.core.chan.forked() {
            return Err(TrySendError::Disconnected);
        }
        let pos = self.core.try_room().ok_or(TrySendError::Full)?;
        Ok(self.lend(pos, len))
    }

    /// As [`loan`](Self::loan), waiting for room at most `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] if there was no room in time; the others as
    /// [`loan`](Self::loan).
    #[cfg(not(loom))]
    pub fn loan_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<FrameLoan<'_>, SendTimeoutError> {
        self.loan_until(len, deadline_after(timeout))
    }

    #[cfg(not(loom))]
    fn loan_until(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<FrameLoan<'_>, SendTimeoutError> {
        if let Some((len, max)) = self.too_large(len) {
            return Err(SendTimeoutError::TooLarge { len, max });
        }
        if self.core.chan.forked() {
            return Err(SendTimeoutError::Disconnected);
        }
        let pos = self
            .core
            .wait_for_room_until(deadline)
            .ok_or(SendTimeoutError::Timeout)?;
        Ok(self.lend(pos, len))
    }

    /// A loan of `len` bytes of the slot at `pos`, which has room (marked as being written).
    #[cfg(not(loom))]
    fn lend(&mut self, pos: u64, len: usize) -> FrameLoan<'_> {
        self.core.ring.begin(&self.core.slots, pos);
        FrameLoan {
            publisher: self,
            pos,
            len,
            written: 0,
        }
    }

    /// How many subscribers are attached and alive now (asking the kernel about each), not
    /// counting evicted ones.
    pub fn subscriber_count(&self) -> usize {
        self.core.subscriber_count()
    }

    /// Wait until at least `n` subscribers are attached and alive, at most `timeout`.
    ///
    /// # Errors
    /// [`WaitForPeerError::Timeout`] if fewer attached in time; [`WaitForPeerError::Disconnected`]
    /// in a forked child's copy.
    pub fn wait_for_subscribers(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<(), WaitForPeerError> {
        self.core.wait_for_subscribers(n, timeout)
    }

    /// Is at least one subscriber attached and alive now?
    pub fn is_connected(&self) -> bool {
        self.core.subscriber_count() > 0
    }

    /// How many frames the ring holds (the requested capacity rounded up to a power of two).
    pub fn capacity(&self) -> usize {
        self.core.chan.geo.capacity as usize
    }

    /// The topic's overflow mode.
    pub fn overflow(&self) -> Overflow {
        self.core.overflow()
    }

    /// Loom only: keep the region, to attach subscribers later.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_reopener(&self) -> crate::chan::LoomReopen {
        self.core.chan.loom_reopener()
    }
}

/// Bytes of a slot lent by [`FramePublisher::loan`], written in place (it derefs to them, and
/// is an [`io::Write`](std::io::Write) from their start); [`commit`](Self::commit) publishes a
/// prefix. Dropped without a commit it publishes nothing.
#[cfg(not(loom))]
pub struct FrameLoan<'a> {
    publisher: &'a mut FramePublisher,
    pos: u64,
    len: usize,
    /// How far `io::Write` has written.
    written: usize,
}

#[cfg(not(loom))]
impl FrameLoan<'_> {
    /// Publish the first `n` bytes of the loan as one frame.
    ///
    /// # Panics
    /// If `n` is longer than the loan.
    pub fn commit(self, n: usize) {
        assert!(
            n <= self.len,
            "commit of {n} bytes on a loan of {} bytes",
            self.len
        );
        let c = &self.publisher.core;
        c.chan.refuse_in_child("a broadcast frame loan");
        c.slots.store_frame_len(self.pos, n);
        c.ring.end(c.chan.header(), &c.slots, self.pos);
    }

    /// Publish what [`io::Write`](std::io::Write) wrote into the loan.
    pub fn commit_written(self) {
        let n = self.written;
        self.commit(n);
    }

    /// The publisher this loan borrows, for its queries (`subscriber_count`, `capacity`, ...)
    /// while the loan is out.
    pub fn publisher(&self) -> &FramePublisher {
        self.publisher
    }
}

#[cfg(not(loom))]
impl std::ops::Deref for FrameLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.publisher
            .core
            .chan
            .refuse_in_child("a broadcast frame loan");
        // SAFETY: the slot at `pos` is the publisher's (marked being written by `loan`, and no
        // other publisher exists); the loan borrows the publisher mutably, so nothing writes it
        // while this shared slice lives (`deref_mut` needs the loan itself mutably).
        let bytes = unsafe { self.publisher.core.slots.frame(self.pos) };
        &bytes[..self.len]
    }
}

#[cfg(not(loom))]
impl std::ops::DerefMut for FrameLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.publisher
            .core
            .chan
            .refuse_in_child("a broadcast frame loan");
        // SAFETY: as in `deref`; the `&mut self` borrow makes this slice the only one.
        let bytes = unsafe { self.publisher.core.slots.frame_mut(self.pos) };
        &mut bytes[..self.len]
    }
}

#[cfg(not(loom))]
impl std::io::Write for FrameLoan<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let at = self.written;
        let n = buf.len().min(self.len - at);
        self[at..at + n].copy_from_slice(&buf[..n]);
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(not(loom))]
impl fmt::Debug for FrameLoan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::FrameLoan")
            .field("position", &self.pos)
            .field("len", &self.len)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// A subscriber of a broadcast frame topic. `Send` but not `Sync`.
pub struct FrameSubscriber {
    core: SubscriberCore,
}

/// Copy the frame at `c` into `buf`.
#[inline(always)]
fn into(buf: &mut Vec<u8>) -> impl FnMut(&Slots, u64) -> usize + '_ {
    move |s: &Slots, c| s.load_frame(c, buf)
}

impl FrameSubscriber {
    /// Open the frame topic `name` and subscribe, starting at the next frame published
    /// ([`Start::Latest`]).
    ///
    /// # Errors
    /// As [`Subscriber::open`](super::Subscriber::open).
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        Self::open_from(name, Start::Latest, opts)
    }

    /// Open the frame topic `name` and subscribe, starting where `start` says.
    ///
    /// # Errors
    /// As [`Subscriber::open`](super::Subscriber::open).
    ///
    /// ```
    /// use shmchan::{broadcast, Options};
    /// # let name = format!("doc-bcast-frames-history-{}", std::process::id());
    /// let mut tx = broadcast::FramePublisher::create(&name, &Options::new())?;
    /// for word in ["a", "bb", "ccc"] { tx.send(word.as_bytes())?; }
    /// let mut late = broadcast::FrameSubscriber::open_from(
    ///     &name, broadcast::Start::History(2), &Options::new())?;
    /// assert_eq!(late.try_recv()?, b"bb");
    /// assert_eq!(late.try_recv()?, b"ccc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn open_from(name: &str, start: Start, opts: &Options) -> Result<Self, Error> {
        let spec = spec(Fingerprint::any_frames(), Role::Receiver, opts);
        let chan = Chan::open(name, opts, &spec)?;
        Self::from_chan(chan, start, opts.wait, Some(opts))
    }

    pub(crate) fn from_chan(
        chan: Chan,
        start: Start,
        wait: WaitStrategy,
        opts: Option<&Options>,
    ) -> Result<Self, Error> {
        Ok(FrameSubscriber {
            core: SubscriberCore::from_chan(chan, start, wait, opts)?,
        })
    }

    /// Receive the next frame into `buf` (its length set to the frame's), waiting as long as
    /// it takes; returns the frame's length. `buf` keeps its allocation from one frame to the
    /// next: the receive to use in a loop.
    ///
    /// # Errors
    /// As [`Subscriber::recv`](super::Subscriber::recv); `buf` then holds nothing of use.
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
        self.core
            .recv_deadline_with(None, &mut into(buf))
            .map_err(RecvError::from)
    }

    /// Receive the next frame into `buf` without waiting; returns its length.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if there is none now; the others as
    /// [`recv_into`](Self::recv_into).
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
        self.core.try_recv_with(&mut into(buf))
    }

    /// Receive the next frame into `buf`, waiting at most `timeout`; returns its length.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if none came; the others as
    /// [`recv_into`](Self::recv_into).
    pub fn recv_timeout_into(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.core
            .recv_deadline_with(deadline_after(timeout), &mut into(buf))
    }

    /// Receive the next frame, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`Subscriber::recv`](super::Subscriber::recv).
    pub fn recv(&mut self) -> Result<Vec<u8>, RecvError> {
        let mut buf = Vec::new();
        self.recv_into(&mut buf)?;
        Ok(buf)
    }

    /// Receive the next frame without waiting.
    ///
    /// # Errors
    /// As [`try_recv_into`](Self::try_recv_into).
    pub fn try_recv(&mut self) -> Result<Vec<u8>, TryRecvError> {
        let mut buf = Vec::new();
        self.try_recv_into(&mut buf)?;
        Ok(buf)
    }

    /// Receive the next frame, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout_into`](Self::recv_timeout_into).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvTimeoutError> {
        let mut buf = Vec::new();
        self.recv_timeout_into(&mut buf, timeout)?;
        Ok(buf)
    }

    /// One attempt at a frame into `buf`, for the async receives.
    pub(super) fn poll_into(
        &self,
        probe: bool,
        buf: &mut Vec<u8>,
    ) -> Poll<Result<usize, RecvError>> {
        self.core.poll(probe, &mut into(buf))
    }

    /// Frames published and not yet read by this subscriber (at most the ring's capacity).
    pub fn lag(&self) -> u64 {
        self.core.lag()
    }

    /// How many frames the ring holds.
    pub fn capacity(&self) -> usize {
        self.core.chan.geo.capacity as usize
    }

    /// The largest frame the topic takes.
    pub fn max_frame(&self) -> usize {
        self.core.slots.max_frame()
    }

    pub(super) fn chan(&self) -> &Chan {
        &self.core.chan
    }

    fn wait_strategy(&self) -> WaitStrategy {
        self.core.wait
    }

    crate::handle::liveness_queries!("publisher");

    crate::handle::wait_for_peer!(
        "publisher",
        data_bell,
        r#"
```
use std::time::Duration;
use shmchan::{broadcast, Options};
# let name = format!("doc-bcast-frames-wait-{}", std::process::id());
let tx = broadcast::FramePublisher::create(&name, &Options::new())?;
let rx = broadcast::FrameSubscriber::open(&name, &Options::new())?;
rx.wait_for_peer(Duration::from_secs(1))?;
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

impl fmt::Debug for FramePublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::FramePublisher")
            .field("name", &self.core.chan.name)
            .field("backend", &self.core.chan.backend)
            .field("capacity", &self.capacity())
            .field("max_frame", &self.max_frame())
            .field("overflow", &self.overflow())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for FrameSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::FrameSubscriber")
            .field("name", &self.core.chan.name)
            .field("backend", &self.core.chan.backend)
            .field("capacity", &self.capacity())
            .field("max_frame", &self.max_frame())
            .finish_non_exhaustive()
    }
}
