//! Broadcast: one [`Publisher`] per topic, any number of [`Subscriber`]s (up to
//! [`Options::max_subscribers`] at once), each receiving every message; subscribers join and
//! leave at any time, and none can hurt the others.
//!
//! One ring holds the messages and each subscriber has its own cursor into it (Aeron's design),
//! so in the default [`Overflow::Overwrite`] mode the publisher never waits and never reads a
//! subscriber's cursor: its cost per message is the same with one subscriber or a hundred. A
//! subscriber that falls a whole ring behind is told exactly how many messages it lost
//! ([`RecvError::Lagged`]) and goes on with the oldest still there, as
//! `tokio::sync::broadcast` does. A value is never read torn: a read the publisher laps is
//! detected (each slot has a stamp, read before and after the copy) and thrown away.
//!
//! With [`Overflow::Block`], the publisher waits for the slowest live subscriber (lossless for
//! those that keep up with the ring): a subscriber that dies is dropped within about 40 ms (the
//! kernel's word, as everywhere in shmchan), and one that is alive but stuck (stopped, in a
//! debugger) longer than `evict_after` is evicted and told so ([`RecvError::Evicted`]).
//!
//! ```
//! use shmchan::{broadcast, Options};
//! # let name = format!("doc-broadcast-{}", std::process::id());
//! let opts = Options::new().capacity(64);
//! let mut tx = broadcast::Publisher::<u64>::create(&name, &opts)?;
//! let mut a = broadcast::Subscriber::<u64>::open(&name, &Options::new())?; // other processes,
//! let mut b = broadcast::Subscriber::<u64>::open(&name, &Options::new())?; // usually
//! tx.send(7)?;
//! assert_eq!(a.recv()?, 7);
//! assert_eq!(b.recv()?, 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A subscriber starts at the next message ([`Start::Latest`], [`Subscriber::open`]), or with
//! history: [`Start::History`]`(n)` the last `n` messages, [`Start::Oldest`] all the ring still
//! holds ([`Subscriber::open_from`]). With no subscriber, `send` succeeds and the message stays
//! in the ring as history.
//!
//! [`FramePublisher`] and [`FrameSubscriber`] do the same for byte frames of any length up to
//! the topic's [`Options::max_frame`] (see [`FramePublisher`] for how they are kept).
//!
//! A publisher that dies leaves the topic to the next: [`Publisher::create`] of a topic whose
//! publisher is gone takes it over, after what the old one published, and the subscribers go
//! on (they see [`RecvError::Disconnected`] once they have read everything, until then).
//!
//! # Trust
//!
//! Subscribers only read shared memory, and everything they read is validated: a hostile
//! process that can write the region can make them receive odd values or errors, never crash
//! them or make them read out of bounds. A subscriber's cursor is its own: a slow or dead
//! subscriber never corrupts the others, and in Overwrite mode never slows the publisher.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

mod async_io;
#[cfg(not(loom))]
pub(crate) mod elements;
mod frames;
pub use async_io::{FrameRecvFuture, FrameRecvStream, RecvFuture, RecvStream};
#[cfg(not(loom))]
pub use frames::FrameLoan;
#[cfg(loom)]
#[doc(hidden)]
pub use frames::loom_frame_channel;
pub use frames::{DEFAULT_MAX_FRAME, FramePublisher, FrameSubscriber, MAX_FRAME};

use crate::Pod;
use crate::chan::{Chan, Role, Spec, deadline_after, payload};
use crate::endpoint::{self, RoleState};
use crate::error::{Error, SendError, SendTimeoutError, TrySendError, WaitForPeerError};
use crate::layout::{BLOCK, Fingerprint, Kind, OVERWRITE, Sub};
use crate::options::{Options, WaitStrategy};
use crate::ring::Slots;
use crate::ring::broadcast::{self as ring, Read};
use crate::sync::Ordering;
use crate::wait::{Poll, wait_until};

/// Subscribers a topic takes attached at once unless [`Options::max_subscribers`] says
/// otherwise (64; 2 in loom models).
pub const DEFAULT_MAX_SUBSCRIBERS: usize = if cfg!(loom) { 2 } else { 64 };

/// What the publisher does when a subscriber is a whole ring behind
/// ([`Options::overflow`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// The publisher never waits; a subscriber left a ring behind gets
    /// [`RecvError::Lagged`]`(n)` with the exact count and resumes at the oldest message still
    /// in the ring. The publisher's cost does not depend on the subscribers.
    #[default]
    Overwrite,
    /// Lossless for live subscribers: the publisher waits for the slowest. A subscriber whose
    /// process dies is dropped within about 40 ms; one alive but not reading for longer than
    /// `evict_after` (if set) is evicted and gets [`RecvError::Evicted`].
    Block {
        /// How long a live subscriber that does not move may hold the publisher back
        /// (`None`: for ever). Kept in milliseconds, at most about 49 days.
        evict_after: Option<Duration>,
    },
}

impl Overflow {
    /// The control line's words for this mode.
    fn words(self) -> (u32, u32) {
        match self {
            Overflow::Overwrite => (OVERWRITE, 0),
            Overflow::Block { evict_after } => (
                BLOCK,
                evict_after.map_or(0, |d| {
                    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
                }),
            ),
        }
    }

    /// The mode a topic's control line holds, if it is one.
    fn from_words(mode: u32, evict_ms: u32) -> Option<Overflow> {
        match mode {
            OVERWRITE => Some(Overflow::Overwrite),
            BLOCK => Some(Overflow::Block {
                evict_after: (evict_ms != 0).then(|| Duration::from_millis(u64::from(evict_ms))),
            }),
            _ => None,
        }
    }
}

/// Where a new subscriber begins ([`Subscriber::open_from`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Start {
    /// At the next message published ([`Subscriber::open`]).
    Latest,
    /// With the last `n` messages published, as many of them as the ring still holds (at
    /// most its capacity less one).
    History(usize),
    /// With every message the ring still holds.
    Oldest,
}

/// Why [`Subscriber::recv`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecvError {
    /// The publisher overwrote this many messages before this subscriber read them; the next
    /// receive goes on with the oldest message still in the ring.
    Lagged(u64),
    /// Block mode: this subscriber did not read for longer than the topic's `evict_after`, and
    /// the publisher went on without it. Open the topic again to go on.
    Evicted,
    /// The publisher is gone (dropped, or its process died) and every message was read: until
    /// a new publisher takes the topic over.
    Disconnected,
}

/// Why [`Subscriber::try_recv`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// No message now.
    Empty,
    /// As [`RecvError::Lagged`].
    Lagged(u64),
    /// As [`RecvError::Evicted`].
    Evicted,
    /// As [`RecvError::Disconnected`].
    Disconnected,
}

/// Why [`Subscriber::recv_timeout`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecvTimeoutError {
    /// No message within the timeout.
    Timeout,
    /// As [`RecvError::Lagged`].
    Lagged(u64),
    /// As [`RecvError::Evicted`].
    Evicted,
    /// As [`RecvError::Disconnected`].
    Disconnected,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged(n) => write!(f, "lagged: {n} messages were overwritten unread"),
            RecvError::Evicted => f.write_str(
                "evicted: this subscriber held the publisher back too long and was dropped",
            ),
            RecvError::Disconnected => f.write_str("receiving on a disconnected topic"),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty topic"),
            TryRecvError::Lagged(n) => RecvError::Lagged(*n).fmt(f),
            TryRecvError::Evicted => RecvError::Evicted.fmt(f),
            TryRecvError::Disconnected => RecvError::Disconnected.fmt(f),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on receive operation"),
            RecvTimeoutError::Lagged(n) => RecvError::Lagged(*n).fmt(f),
            RecvTimeoutError::Evicted => RecvError::Evicted.fmt(f),
            RecvTimeoutError::Disconnected => RecvError::Disconnected.fmt(f),
        }
    }
}

impl std::error::Error for RecvError {}
impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvTimeoutError {}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => TryRecvError::Lagged(n),
            RecvError::Evicted => TryRecvError::Evicted,
            RecvError::Disconnected => TryRecvError::Disconnected,
        }
    }
}

impl From<RecvTimeoutError> for RecvError {
    /// For a receive without a deadline: it cannot time out.
    fn from(e: RecvTimeoutError) -> Self {
        match e {
            RecvTimeoutError::Lagged(n) => RecvError::Lagged(n),
            RecvTimeoutError::Evicted => RecvError::Evicted,
            RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected => RecvError::Disconnected,
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => RecvTimeoutError::Lagged(n),
            RecvError::Evicted => RecvTimeoutError::Evicted,
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
        }
    }
}

/// Loom only: an in-process topic (capacity, overflow mode, `max_subscribers`) with its
/// publisher and one subscriber (starting at the latest); more subscribers join through
/// [`Publisher::loom_reopener`].
#[cfg(loom)]
#[doc(hidden)]
pub fn loom_channel<T: Pod>(
    capacity: usize,
    overflow: Overflow,
    max_subscribers: usize,
) -> Result<(Publisher<T>, Subscriber<T>), Error> {
    let opts = Options::new()
        .overflow(overflow)
        .max_subscribers(max_subscribers);
    let (a, b) = Chan::heap_pair(capacity, &spec(Fingerprint::of::<T>(), Role::Sender, &opts))?;
    Ok((
        Publisher::from_chan(a, WaitStrategy::Park, None)?,
        Subscriber::from_chan(b, Start::Latest, WaitStrategy::Park, None)?,
    ))
}

#[cfg(loom)]
impl crate::chan::LoomReopen {
    /// Loom only: a new subscriber of the topic, starting where `start` says.
    pub fn broadcast_subscriber<T: Pod>(&self, start: Start) -> Result<Subscriber<T>, Error> {
        let chan = self.join(&spec(
            Fingerprint::of::<T>(),
            Role::Receiver,
            &Options::new(),
        ))?;
        Subscriber::from_chan(chan, start, WaitStrategy::Park, None)
    }
}

/// Did the publisher evict the occupant of generation `generation` of the place whose line is
/// `sub`? (The line keeps the generation it evicted, so that a new occupant of the place is
/// not taken for it; 0 is no eviction, whatever the generation.)
fn is_evicted(sub: &Sub, generation: u32) -> bool {
    // Acquire: pairs with the publisher's Release store of the eviction (see there).
    let e = sub.evicted.load(Ordering::Acquire);
    e != 0 && e == u64::from(generation)
}

/// What a topic of payload `fp` is, for a handle of `role`.
fn spec(fp: Fingerprint, role: Role, opts: &Options) -> Spec {
    Spec {
        kind: Kind::Broadcast,
        role,
        fp,
        max_senders: 1,
        max_receivers: opts.max_subscribers,
        overflow: opts.overflow.unwrap_or_default().words(),
    }
}

/// The topic's overflow mode, checked against what `opts` asked for (if it asked).
fn overflow_of(chan: &Chan, opts: Option<&Options>) -> Result<Overflow, Error> {
    let ctl = chan.region().control(&chan.geo);
    // Relaxed: written by the creator before it published the header (whose Acquire load at
    // open orders this read).
    let (mode, ms) = (
        ctl.mode.load(Ordering::Relaxed),
        ctl.evict_after_ms.load(Ordering::Relaxed),
    );
    let incompatible = |detail: String| Error::Incompatible {
        name: chan.name.clone(),
        backend: chan.backend.clone().unwrap_or_default(),
        detail,
    };
    let found = Overflow::from_words(mode, ms)
        .ok_or_else(|| incompatible(format!("corrupt header: overflow mode {mode}")))?;
    if let Some(want) = opts.and_then(|o| o.overflow) {
        if want != found {
            return Err(incompatible(format!(
                "the topic's overflow mode is {found:?}, opened as {want:?}"
            )));
        }
    }
    Ok(found)
}

/// The publisher of a broadcast topic. `Send` but not `Sync`; one per topic.
pub struct Publisher<T: Pod> {
    core: PublisherCore,
    _payload: PhantomData<T>,
}

/// What a publisher is, whatever it publishes (typed values here, frames in `frames.rs`).
struct PublisherCore {
    ring: ring::Publisher,
    slots: Slots,
    lines: ring::Lines,
    wait: WaitStrategy,
    /// Block mode: what the publisher knows of its subscribers between scans.
    gate: Option<ring::Gate>,
    /// Block mode with eviction: how long a live subscriber may hold the publisher back.
    evict_after: Option<Duration>,
    /// Per subscriber line: the generation and cursor seen when the publisher was last
    /// blocked, since when it has held the publisher back unchanged, and whether it did (for
    /// eviction: the clock starts when a subscriber starts holding the publisher back).
    watch: RefCell<Vec<(u32, u64, Instant, bool)>>,
    chan: Chan,
}

/// A subscriber of a broadcast topic. `Send` but not `Sync`.
pub struct Subscriber<T: Pod> {
    core: SubscriberCore,
    _payload: PhantomData<T>,
}

/// What a subscriber is, whatever it receives (typed values here, frames in `frames.rs`).
struct SubscriberCore {
    ring: ring::Subscriber,
    slots: Slots,
    lines: ring::Lines,
    /// Our subscriber line's index (our place less the publisher's).
    index: usize,
    wait: WaitStrategy,
    /// Block mode: the publisher waits for us, and may evict us.
    block: bool,
    /// Evicted, and told so: every later receive says so too.
    evicted: Cell<bool>,
    /// Messages lost that a batch receive found after it had received some: the next receive
    /// reports them first.
    lag_pending: Cell<u64>,
    chan: Chan,
}

impl<T: Pod> Publisher<T> {
    /// Create the topic `name` and attach as its publisher, or, if the topic exists and its
    /// publisher is gone (dropped, or its process died), take it over: the new publisher goes
    /// on after what the old one published, and the subscribers go on too. The topic's
    /// capacity, `max_subscribers` and overflow mode are those it was made with.
    ///
    /// # Errors
    /// [`Error::InUse`] if the topic's publisher is alive; [`Error::Incompatible`] if the name
    /// holds another kind of channel, another payload type, or (if `opts` sets one) another
    /// overflow mode; [`Error::InvalidOptions`] for a capacity or `max_subscribers` out of
    /// range; as [`spsc::Sender::create`](crate::spsc::Sender::create) otherwise.
    ///
    /// ```
    /// use shmchan::{broadcast, Error, Options};
    /// # let name = format!("doc-bcast-create-{}", std::process::id());
    /// let tx = broadcast::Publisher::<u32>::create(&name, &Options::new())?;
    /// assert!(matches!(
    ///     broadcast::Publisher::<u32>::create(&name, &Options::new()),
    ///     Err(Error::InUse { .. }) // one publisher per topic
    /// ));
    /// drop(tx);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &Options) -> Result<Self, Error> {
        let spec = spec(payload::<T>(opts)?, Role::Sender, opts);
        PublisherCore::create(name, opts, &spec, &spec).map(Self::new)
    }

    /// Open the existing topic `name` as its publisher (its previous publisher is gone).
    ///
    /// # Errors
    /// As [`create`](Self::create), and [`Error::NotFound`].
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        PublisherCore::open(name, opts, &spec(payload::<T>(opts)?, Role::Sender, opts))
            .map(Self::new)
    }

    fn new(core: PublisherCore) -> Self {
        Publisher {
            core,
            _payload: PhantomData,
        }
    }

    #[cfg(loom)]
    pub(crate) fn from_chan(
        chan: Chan,
        wait: WaitStrategy,
        opts: Option<&Options>,
    ) -> Result<Self, Error> {
        PublisherCore::from_chan(chan, wait, opts).map(Self::new)
    }

    /// One attempt at publishing `value`: `Ready` when sent, `Pending` when a Block-mode
    /// topic has no room.
    #[inline(always)]
    fn poll(&self, value: &T, probe: bool) -> Poll<()> {
        let c = &self.core;
        if !c.room(probe) {
            return Poll::Pending;
        }
        c.ring.publish(c.chan.header(), &c.slots, value);
        Poll::Ready(())
    }

    /// Publish `value` to every subscriber. In Overwrite mode (the default) this never waits;
    /// in Block mode it waits for room (for the slowest live subscriber, or its eviction).
    ///
    /// # Errors
    /// [`SendError`] with the value only in a forked child's copy of the publisher: a topic
    /// with no subscriber takes the message as history.
    ///
    /// ```
    /// use shmchan::{broadcast, Options};
    /// # let name = format!("doc-bcast-send-{}", std::process::id());
    /// let mut tx = broadcast::Publisher::<u32>::create(&name, &Options::new().capacity(4))?;
    /// for i in 0..10 {
    ///     tx.send(i)?; // nobody listens yet: the ring keeps the last ones as history
    /// }
    /// let mut rx = broadcast::Subscriber::<u32>::open_from(
    ///     &name, broadcast::Start::Oldest, &Options::new())?;
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [7, 8, 9]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        self.send_deadline(value, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// Publish `value` without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] in Block mode when the slowest live subscriber is a ring behind;
    /// [`TrySendError::Disconnected`] in a forked child's copy.
    pub fn try_send(&mut self, value: T) -> Result<(), TrySendError<T>> {
        if self.core.chan.forked() {
            return Err(TrySendError::Disconnected(value));
        }
        match self.poll(&value, false) {
            Poll::Ready(()) => Ok(()),
            Poll::Pending if self.core.chan.probe_due() => match self.poll(&value, true) {
                Poll::Ready(()) => Ok(()),
                Poll::Pending => Err(TrySendError::Full(value)),
            },
            Poll::Pending => Err(TrySendError::Full(value)),
        }
    }

    /// Publish `value`, waiting at most `timeout` for room (Block mode).
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] if there was no room in time;
    /// [`SendTimeoutError::Disconnected`] in a forked child's copy.
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline(value, deadline_after(timeout))
    }

    #[inline]
    fn send_deadline(
        &mut self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        if self.core.chan.forked() {
            return Err(SendTimeoutError::Disconnected(value));
        }
        if let Poll::Ready(()) = self.poll(&value, false) {
            return Ok(());
        }
        let bell = &self.core.chan.header().space_bell;
        match wait_until(bell, self.core.wait, deadline, |probe| {
            self.poll(&value, probe)
        }) {
            Some(()) => Ok(()),
            None => Err(SendTimeoutError::Timeout(value)),
        }
    }

    /// Publish all of `values` in order (waiting for room in Block mode).
    ///
    /// # Errors
    /// [`SendError`]`(0)` in a forked child's copy (nothing was sent).
    pub fn send_slice(&mut self, values: &[T]) -> Result<(), SendError<usize>> {
        // Each send checks for a fork; without a timeout, that is its only way to fail.
        for (sent, v) in values.iter().enumerate() {
            if self.send_deadline(*v, None).is_err() {
                return Err(SendError(sent));
            }
        }
        Ok(())
    }

    /// Lend the next slot, to write the message in place; [`Loan::commit`] publishes it, and
    /// a loan dropped without a commit publishes nothing. Waits for room in Block mode.
    ///
    /// In Overwrite mode a subscriber the publisher laps may read the slot while the loan is
    /// written: it throws what it read away (the slot's stamp says it is being written), but
    /// formally that read races the loan's writes, as for payloads over 256 bytes elsewhere.
    ///
    /// # Errors
    /// [`SendError`] in a forked child's copy.
    ///
    /// ```
    /// use shmchan::{broadcast, Options};
    /// # let name = format!("doc-bcast-loan-{}", std::process::id());
    /// let mut tx = broadcast::Publisher::<[u64; 4]>::create(&name, &Options::new())?;
    /// let mut rx = broadcast::Subscriber::<[u64; 4]>::open(&name, &Options::new())?;
    /// let mut slot = tx.loan()?;
    /// slot[0] = 42;
    /// slot.commit();
    /// assert_eq!(rx.recv()?[0], 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn loan(&mut self) -> Result<Loan<'_, T>, SendError<()>> {
        if self.core.chan.forked() {
            return Err(SendError(()));
        }
        let p = self.core.wait_for_room();
        self.core.ring.begin(&self.core.slots, p);
        Ok(Loan {
            publisher: self,
            pos: p,
        })
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

    /// How many messages the ring holds (the requested capacity rounded up to a power of
    /// two); a subscriber can start with at most this many less one of history.
    pub fn capacity(&self) -> usize {
        self.core.chan.geo.capacity as usize
    }

    /// Loom only: keep the region, to attach subscribers later.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_reopener(&self) -> crate::chan::LoomReopen {
        self.core.chan.loom_reopener()
    }

    /// Loom only: evict the subscriber of place `1 + line` now, as a blocked publisher does
    /// after `evict_after` (a model has no clock).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_evict(&self, line: usize) {
        self.core.loom_evict(line)
    }

    /// The topic's overflow mode.
    pub fn overflow(&self) -> Overflow {
        self.core.overflow()
    }
}

impl PublisherCore {
    /// Create the topic or take it over (`spec` to create it, `take_over` to open it: a frame
    /// publisher that did not ask for a largest frame takes the topic's).
    #[cfg(not(loom))]
    fn create(name: &str, opts: &Options, spec: &Spec, take_over: &Spec) -> Result<Self, Error> {
        let chan = match Chan::create(name, opts, spec) {
            Err(Error::AlreadyExists { .. }) => Self::take_over(name, opts, take_over)?,
            r => r?,
        };
        Self::from_chan(chan, opts.wait, Some(opts))
    }

    /// Take an existing topic over.
    #[cfg(not(loom))]
    fn open(name: &str, opts: &Options, spec: &Spec) -> Result<Self, Error> {
        Self::from_chan(Self::take_over(name, opts, spec)?, opts.wait, Some(opts))
    }

    /// Attach to an existing topic as its publisher; a live publisher is [`Error::InUse`].
    #[cfg(not(loom))]
    fn take_over(name: &str, opts: &Options, spec: &Spec) -> Result<Chan, Error> {
        match Chan::open(name, opts, spec) {
            Err(Error::EndpointTaken { .. }) => Err(Error::InUse {
                name: name.to_owned(),
                backend: opts.backend.clone(),
                detail: "its publisher is alive (one publisher per topic)".into(),
            }),
            r => r,
        }
    }

    fn from_chan(chan: Chan, wait: WaitStrategy, opts: Option<&Options>) -> Result<Self, Error> {
        let overflow = overflow_of(&chan, opts)?;
        let slots = Slots::new(chan.region(), &chan.geo);
        let ring = ring::Publisher::new(chan.header(), &slots, chan.geo.capacity);
        let (gate, evict_after) = match overflow {
            Overflow::Overwrite => (None, None),
            Overflow::Block { evict_after } => (Some(ring::Gate::new()), evict_after),
        };
        let now = Instant::now();
        Ok(PublisherCore {
            ring,
            slots,
            lines: ring::Lines::new(chan.region(), &chan.geo),
            wait,
            gate,
            evict_after,
            watch: RefCell::new(vec![(0, 0, now, false); chan.geo.max_receivers as usize]),
            chan,
        })
    }

    /// Is there room for the next message (Block mode: not a ring past the slowest live
    /// subscriber)? Scans the subscribers when the last scan says no (`probe`: asking the
    /// kernel whether they live, and evicting one stuck past `evict_after`).
    #[inline(always)]
    fn room(&self, probe: bool) -> bool {
        match &self.gate {
            None => true,
            Some(gate) => {
                let p = self.ring.position();
                gate.room(self.lines.control(), p, self.ring.capacity()) || self.scan(gate, probe)
            }
        }
    }

    /// Block mode: read every subscriber's cursor again (see [`room`](Self::room)); returns
    /// whether there is room now. Allocates nothing, and reads the clock only for eviction.
    #[cold]
    #[inline(never)]
    fn scan(&self, gate: &ring::Gate, probe: bool) -> bool {
        let (chan, geo) = (&self.chan, &self.chan.geo);
        let hdr = chan.header();
        let ctl = self.lines.control();
        gate.begin_scan(ctl);
        if probe {
            endpoint::reap_dead(hdr, chan.region(), geo.receivers());
        }
        let p = self.ring.position();
        let first = geo.receivers().start;
        // The live, attached, not evicted subscribers: (line, generation, cursor).
        let live = || {
            geo.receivers().filter_map(move |i| {
                // SYNC POINT (endpoint): Acquire, pairs with a joiner's claim (and `detach`).
                let w = hdr.endpoints[i].load(Ordering::Acquire);
                if endpoint::state_of(w) != endpoint::ATTACHED {
                    return None;
                }
                let generation = endpoint::generation_of(w);
                let sub = self.lines.sub(i - first);
                // Evicted occupants hold nothing back (the word is written by us only).
                if is_evicted(sub, generation) {
                    return None;
                }
                // SYNC POINT (bcast-free): Acquire, pairs with the subscriber's Release
                // store: the slots below its cursor are read before we write over them.
                let c = sub.cursor.load(Ordering::Acquire);
                Some((i - first, generation, c))
            })
        };
        gate.scanned(ctl, live().map(|(_, _, c)| c), p);
        if gate.fits(p, self.ring.capacity()) {
            return true;
        }
        // Blocked. Evict the live subscribers holding us back that have not moved for longer
        // than `evict_after`, and look again.
        let Some(limit) = self.evict_after else {
            return false;
        };
        let now = Instant::now();
        let mut watch = self.watch.borrow_mut();
        let mut evicted = false;
        for (line, generation, c) in live() {
            let seen = &mut watch[line];
            // The clock runs from when the subscriber started holding us back without moving:
            // one that keeps up (not a ring behind) or moves starts it again.
            let behind = p.wrapping_sub(c) >= self.ring.capacity();
            if !behind || !seen.3 || (seen.0, seen.1) != (generation, c) {
                *seen = (generation, c, now, behind);
            }
            if behind && now.duration_since(seen.2) >= limit {
                // Release: pairs with the Acquire in `is_evicted`. No other data travels with
                // the word (the subscriber only stops); the pair orders the eviction after the
                // scan that decided it for a reader of both, and costs a plain store and load
                // on x86.
                self.lines
                    .sub(line)
                    .evicted
                    .store(u64::from(generation), Ordering::Release);
                evicted = true;
            }
        }
        drop(watch);
        if evicted {
            hdr.data_bell.wake(); // an evicted subscriber asleep learns of it at once
            return self.scan(gate, false);
        }
        false
    }

    /// Wait for room for the next message (Block mode), as long as it takes; returns its
    /// position. (For loans, which write the slot in place after this.)
    fn wait_for_room(&self) -> u64 {
        self.wait_for_room_until(None)
            .expect("no deadline: waits until there is room")
    }

    /// Room for the next message now (Block mode), probing the subscribers if a probe is due,
    /// as `try_send` does (so a dead slowest subscriber stops holding the publisher back): its
    /// position, or `None`.
    fn try_room(&self) -> Option<u64> {
        let room = self.room(false) || (self.chan.probe_due() && self.room(true));
        room.then(|| self.ring.position())
    }

    /// Wait for room for the next message (Block mode) until `deadline` (`None`: as long as it
    /// takes); its position, or `None` if the deadline passed first.
    fn wait_for_room_until(&self, deadline: Option<Instant>) -> Option<u64> {
        if !self.room(false) {
            let bell = &self.chan.header().space_bell;
            wait_until(bell, self.wait, deadline, |probe| {
                if self.room(probe) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })?;
        }
        Some(self.ring.position())
    }

    /// How many subscribers are attached and alive now (asking the kernel about each), not
    /// counting evicted ones.
    fn subscriber_count(&self) -> usize {
        let (chan, geo) = (&self.chan, &self.chan.geo);
        if chan.forked() {
            return 0;
        }
        let (hdr, region) = (chan.header(), chan.region());
        endpoint::reap_dead(hdr, region, geo.receivers());
        geo.receivers()
            .filter(|&i| {
                // SYNC POINT (endpoint): Acquire, as in `role_state`.
                let w = hdr.endpoints[i].load(Ordering::Acquire);
                let sub = self.lines.sub(i - geo.receivers().start);
                // Acquire: pairs with the Release store of `ready` by the subscriber as it
                // opens (its start fixed, its join asked for, before it counts).
                endpoint::state_of(w) == endpoint::ATTACHED
                    && sub.ready.load(Ordering::Acquire) == u64::from(endpoint::generation_of(w))
                    && !is_evicted(sub, endpoint::generation_of(w))
            })
            .count()
    }

    /// Wait until at least `n` subscribers are attached and alive, at most `timeout`.
    ///
    /// # Errors
    /// [`WaitForPeerError::Timeout`] if fewer attached in time; [`WaitForPeerError::Disconnected`]
    /// in a forked child's copy.
    fn wait_for_subscribers(&self, n: usize, timeout: Duration) -> Result<(), WaitForPeerError> {
        let attempt = |_probe: bool| {
            if self.chan.forked() {
                Poll::Ready(Err(WaitForPeerError::Disconnected))
            } else if self.subscriber_count() >= n {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        };
        if let Poll::Ready(r) = attempt(false) {
            return r;
        }
        // Joiners ring both doorbells after claiming their place.
        let bell = &self.chan.header().space_bell;
        wait_until(bell, WaitStrategy::Park, deadline_after(timeout), attempt)
            .unwrap_or(Err(WaitForPeerError::Timeout))
    }

    #[cfg(loom)]
    fn loom_evict(&self, line: usize) {
        let place = self.chan.geo.receivers().start + line;
        // Acquire: pairs with the Release of the occupant's claim (`endpoint::attach`), as the
        // real eviction's scan reads the entry.
        let w = self.chan.header().endpoints[place].load(Ordering::Acquire);
        // Release: as the real eviction's store.
        self.lines
            .sub(line)
            .evicted
            .store(u64::from(endpoint::generation_of(w)), Ordering::Release);
        self.chan.header().data_bell.wake();
    }

    fn overflow(&self) -> Overflow {
        match self.gate {
            None => Overflow::Overwrite,
            Some(_) => Overflow::Block {
                evict_after: self.evict_after,
            },
        }
    }
}

/// A slot lent by [`Publisher::loan`], written in place; [`commit`](Self::commit) publishes
/// it. Dropped without a commit it publishes nothing: the slot stays marked as being written
/// until the next message is written there.
pub struct Loan<'a, T: Pod> {
    publisher: &'a mut Publisher<T>,
    pos: u64,
}

impl<T: Pod> Loan<'_, T> {
    /// Publish the message written into the slot.
    pub fn commit(self) {
        let p = &self.publisher.core;
        p.chan.refuse_in_child("a broadcast loan");
        p.ring.end(p.chan.header(), &p.slots, self.pos);
    }
}

impl<T: Pod> std::ops::Deref for Loan<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.publisher.core.chan.refuse_in_child("a broadcast loan");
        // SAFETY: the slot at `pos` is the publisher's (marked being written by `loan`, and no
        // other publisher exists); the loan borrows the publisher, so nothing else writes it
        // while the reference lives; `T: Pod` accepts whatever bytes it holds.
        unsafe { self.publisher.core.slots.payload::<T>(self.pos) }
    }
}

impl<T: Pod> std::ops::DerefMut for Loan<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.publisher.core.chan.refuse_in_child("a broadcast loan");
        // SAFETY: as in `deref`, and the loan is borrowed mutably.
        unsafe { self.publisher.core.slots.payload_mut::<T>(self.pos) }
    }
}

impl<T: Pod> fmt::Debug for Loan<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Loan")
            .field("position", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Subscriber<T> {
    /// Open the topic `name` and subscribe, starting at the next message published
    /// ([`Start::Latest`]).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::EndpointTaken`] if `max_subscribers` are attached;
    /// [`Error::Incompatible`] if the name holds another kind of channel or payload type, or
    /// (if `opts` sets one) another overflow mode; as
    /// [`spsc::Receiver::open`](crate::spsc::Receiver::open) otherwise.
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        Self::open_from(name, Start::Latest, opts)
    }

    /// Open the topic `name` and subscribe, starting where `start` says.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    ///
    /// ```
    /// use shmchan::{broadcast, Options};
    /// # let name = format!("doc-bcast-history-{}", std::process::id());
    /// let mut tx = broadcast::Publisher::<u32>::create(&name, &Options::new())?;
    /// for i in 0..5 { tx.send(i)?; }
    /// let mut late = broadcast::Subscriber::<u32>::open_from(
    ///     &name, broadcast::Start::History(2), &Options::new())?;
    /// assert_eq!(late.try_recv(), Ok(3));
    /// assert_eq!(late.try_recv(), Ok(4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn open_from(name: &str, start: Start, opts: &Options) -> Result<Self, Error> {
        let spec = spec(payload::<T>(opts)?, Role::Receiver, opts);
        let chan = Chan::open(name, opts, &spec)?;
        Self::from_chan(chan, start, opts.wait, Some(opts))
    }

    pub(crate) fn from_chan(
        chan: Chan,
        start: Start,
        wait: WaitStrategy,
        opts: Option<&Options>,
    ) -> Result<Self, Error> {
        Ok(Subscriber {
            core: SubscriberCore::from_chan(chan, start, wait, opts)?,
            _payload: PhantomData,
        })
    }

    /// One attempt at a message: `Ready` with it or an error, `Pending` when there is none.
    #[inline(always)]
    fn poll(&self, probe: bool) -> Poll<Result<T, RecvError>> {
        self.core
            .poll(probe, &mut |s: &Slots, c| s.load_words::<T>(c))
    }

    /// Receive the next message, waiting as long as it takes.
    ///
    /// # Errors
    /// [`RecvError::Lagged`]`(n)` if `n` messages were overwritten before we read them (the
    /// next receive goes on); [`RecvError::Evicted`] (Block mode); [`RecvError::Disconnected`]
    /// once the publisher is gone and everything was read.
    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.recv_deadline(None).map_err(RecvError::from)
    }

    /// Receive the next message without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if there is none now; the others as [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.core
            .try_recv_with(&mut |s: &Slots, c| s.load_words::<T>(c))
    }

    /// Receive the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if none came; the others as [`recv`](Self::recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_deadline(deadline_after(timeout))
    }

    fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        self.core
            .recv_deadline_with(deadline, &mut |s: &Slots, c| s.load_words::<T>(c))
    }

    /// Wait for at least one message, then receive as many as are there, at most
    /// `buf.len()`, into the start of `buf`; returns how many. A lag found after some were
    /// received is reported by the next call.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), when nothing was received.
    pub fn recv_slice(&mut self, buf: &mut [T]) -> Result<usize, RecvError> {
        let Some((first, rest)) = buf.split_first_mut() else {
            return Ok(0);
        };
        *first = self.recv()?;
        let mut n = 1;
        for slot in rest {
            match self.poll(false) {
                Poll::Ready(Ok(v)) => *slot = v,
                Poll::Ready(Err(RecvError::Lagged(lost))) => {
                    // The cursor moved on already: report the loss with the next receive.
                    self.core.lag_pending.set(lost);
                    break;
                }
                _ => break,
            }
            n += 1;
        }
        Ok(n)
    }

    /// Messages published and not yet read by this subscriber (at most the ring's capacity).
    pub fn lag(&self) -> u64 {
        self.core.lag()
    }

    /// How many messages the ring holds.
    pub fn capacity(&self) -> usize {
        self.core.chan.geo.capacity as usize
    }

    /// An iterator over the messages there now, without waiting; it ends at the first empty
    /// (or lagged, evicted, disconnected) receive.
    pub fn try_iter(&mut self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    fn chan(&self) -> &Chan {
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
use shmchan::{broadcast, Options, WaitForPeerError};
# let name = format!("doc-bcast-wait-{}", std::process::id());
let tx = broadcast::Publisher::<u64>::create(&name, &Options::new())?;
let rx = broadcast::Subscriber::<u64>::open(&name, &Options::new())?;
rx.wait_for_peer(Duration::from_secs(1))?;
drop(tx);
assert_eq!(rx.wait_for_peer(Duration::from_millis(10)), Err(WaitForPeerError::Timeout));
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

impl SubscriberCore {
    fn from_chan(
        chan: Chan,
        start: Start,
        wait: WaitStrategy,
        opts: Option<&Options>,
    ) -> Result<Self, Error> {
        let overflow = overflow_of(&chan, opts)?;
        let capacity = chan.geo.capacity;
        let back = match start {
            Start::Latest => 0,
            Start::History(n) => n as u64,
            Start::Oldest => capacity,
        };
        let cursor = ring::start(chan.header(), capacity, back);
        let lines = ring::Lines::new(chan.region(), &chan.geo);
        let index = chan.entry() - chan.geo.receivers().start;
        let sub = lines.sub(index);
        let block = matches!(overflow, Overflow::Block { .. });
        // How often the cursor is published: a Block-mode publisher waits for it, so often
        // enough to keep a quarter of the ring moving; otherwise only people read it.
        let every = if block {
            (capacity / 4).clamp(1, 64)
        } else {
            64
        };
        let ring = ring::Subscriber::new(capacity, cursor, every, start == Start::Latest, sub);
        // Relaxed: the place's lag counter starts again for its new occupant.
        sub.lagged.store(0, Ordering::Relaxed);
        if block {
            // Ask the publisher to count us before its next message, and wake it if it waits
            // for room (it scans again).
            ring.join(lines.control());
            chan.header().space_bell.notify();
        }
        // Ready: from now on the publisher counts us (`subscriber_count`), and one that waited
        // for us sends nothing we will not see. Release: pairs with the Acquire load there.
        sub.ready
            .store(u64::from(chan.place_generation()), Ordering::Release);
        chan.header().space_bell.notify();
        Ok(SubscriberCore {
            ring,
            slots: Slots::new(chan.region(), &chan.geo),
            lines,
            index,
            wait,
            block,
            evicted: Cell::new(false),
            lag_pending: Cell::new(0),
            chan,
        })
    }

    #[inline(always)]
    fn sub(&self) -> &Sub {
        self.lines.sub(self.index)
    }

    /// One attempt at a message, copied out by `copy` (see `ring::Subscriber::read`): `Ready`
    /// with it or an error, `Pending` when there is none.
    #[inline(always)]
    fn poll<R>(
        &self,
        probe: bool,
        copy: &mut impl FnMut(&Slots, u64) -> R,
    ) -> Poll<Result<R, RecvError>> {
        if self.block && self.is_evicted() {
            return Poll::Ready(Err(RecvError::Evicted));
        }
        if self.lag_pending.get() != 0 {
            return Poll::Ready(Err(RecvError::Lagged(self.lag_pending.replace(0))));
        }
        let hdr = self.chan.header();
        match self
            .ring
            .read(hdr, &self.slots, &self.lines, self.index, |s, c| copy(s, c))
        {
            Read::Value(v) => {
                if self.block && self.ring.is_published() {
                    hdr.space_bell.notify(); // the publisher may wait for these slots
                }
                Poll::Ready(Ok(v))
            }
            Read::Lagged(n) => Poll::Ready(Err(self.lagged(n))),
            Read::Empty => self.empty(probe, copy),
        }
    }

    /// Block mode: did the publisher evict us? (Once told, always.)
    #[inline(always)]
    fn is_evicted(&self) -> bool {
        if self.evicted.get() {
            return true;
        }
        let now = is_evicted(self.sub(), self.chan.place_generation());
        self.evicted.set(now);
        now
    }

    /// We were lapped: in Block mode that means we were evicted (the publisher went on
    /// without us).
    #[cold]
    fn lagged(&self, n: u64) -> RecvError {
        if self.block && self.is_evicted() {
            RecvError::Evicted
        } else {
            if self.block {
                self.chan.header().space_bell.notify(); // the jump published our cursor
            }
            RecvError::Lagged(n)
        }
    }

    /// Nothing at our cursor: pending, unless the publisher is gone (then, once more, what
    /// it published before leaving, and `Disconnected`).
    #[cold]
    fn empty<R>(
        &self,
        probe: bool,
        copy: &mut impl FnMut(&Slots, u64) -> R,
    ) -> Poll<Result<R, RecvError>> {
        // About to wait: say how far we got (a Block-mode publisher may wait for it).
        if self.ring.publish(self.sub()) && self.block {
            self.chan.header().space_bell.notify();
        }
        if self.chan.peers(probe) != RoleState::Gone {
            return Poll::Pending;
        }
        // The publisher's detach (Release) came after its last publish, and `peers` read the
        // entry with Acquire: one more read sees everything it published.
        let hdr = self.chan.header();
        match self
            .ring
            .read(hdr, &self.slots, &self.lines, self.index, |s, c| copy(s, c))
        {
            Read::Value(v) => Poll::Ready(Ok(v)),
            Read::Lagged(n) => Poll::Ready(Err(self.lagged(n))),
            Read::Empty => Poll::Ready(Err(RecvError::Disconnected)),
        }
    }

    /// A receive without waiting, copying out with `copy`.
    fn try_recv_with<R>(&self, copy: &mut impl FnMut(&Slots, u64) -> R) -> Result<R, TryRecvError> {
        if self.chan.forked() {
            return Err(TryRecvError::Disconnected);
        }
        let r = match self.poll(false, copy) {
            Poll::Pending if self.chan.probe_due() => self.poll(true, copy),
            r => r,
        };
        match r {
            Poll::Ready(r) => r.map_err(TryRecvError::from),
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }

    /// A receive waiting until `deadline` (`None`: as long as it takes), copying out with
    /// `copy`.
    fn recv_deadline_with<R>(
        &self,
        deadline: Option<Instant>,
        copy: &mut impl FnMut(&Slots, u64) -> R,
    ) -> Result<R, RecvTimeoutError> {
        if self.chan.forked() {
            return Err(RecvTimeoutError::Disconnected);
        }
        let r = match self.poll(false, copy) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => {
                let bell = &self.chan.header().data_bell;
                wait_until(bell, self.wait, deadline, |probe| self.poll(probe, copy))
            }
        };
        match r {
            Some(r) => r.map_err(RecvTimeoutError::from),
            None => Err(RecvTimeoutError::Timeout),
        }
    }

    /// Messages published and not yet read (at most the ring's capacity).
    fn lag(&self) -> u64 {
        self.ring.lag(self.chan.header())
    }
}

impl<T: Pod> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Publisher")
            .field("name", &self.core.chan.name)
            .field("backend", &self.core.chan.backend)
            .field("capacity", &self.capacity())
            .field("overflow", &self.overflow())
            .finish_non_exhaustive()
    }
}

crate::handle::debug_impl!(Subscriber, "broadcast::Subscriber");
