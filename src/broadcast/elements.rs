//! Broadcast topics of an [`Element`] known at run time: the peers of
//! [`broadcast::Publisher<T>`](super::Publisher) and [`broadcast::Subscriber<T>`](super::Subscriber)
//! for a program that has no `T`, public as [`untyped::broadcast`](crate::untyped::broadcast).
//! The same topics, slots and protocol: only the copy in and out of a slot differs (bytes of
//! the element's size, race-free: `Slots::store_bytes`, `Slots::load_bytes`).

use std::fmt;
use std::task::Context;
use std::time::{Duration, Instant};

use super::{
    Overflow, PublisherCore, RecvError, RecvTimeoutError, Start, SubscriberCore, TryRecvError, spec,
};
use crate::chan::{Chan, Role, deadline_after};
use crate::error::{Error, SendError, SendTimeoutError, TrySendError, WaitForPeerError};
use crate::options::{Options, WaitStrategy};
use crate::ring::Slots;
use crate::untyped::{Element, Waiting, elements};
use crate::wait::{Poll, wait_until};

/// The publisher of a broadcast topic of [`Element`]s. `Send` but not `Sync`; one per topic,
/// as [`broadcast::Publisher`](super::Publisher), whose behaviour it shares (Overwrite and
/// Block modes, taking over a topic whose publisher is gone).
pub struct Publisher {
    core: PublisherCore,
    size: usize,
}

/// A subscriber of a broadcast topic of [`Element`]s. `Send` but not `Sync`, as
/// [`broadcast::Subscriber`](super::Subscriber).
pub struct Subscriber {
    core: SubscriberCore,
    size: usize,
}

impl Publisher {
    /// Create the topic `name` for elements `element` and attach as its publisher, or take
    /// over a topic whose publisher is gone, as
    /// [`broadcast::Publisher::create`](super::Publisher::create) does.
    ///
    /// # Errors
    /// As [`broadcast::Publisher::create`](super::Publisher::create);
    /// [`Error::InvalidOptions`] for an element that cannot be (see [`Element`]).
    ///
    /// ```
    /// use shmchan::{broadcast::Start, untyped::{self, Element}, Options};
    /// # let name = format!("doc-untyped-bcast-{}", std::process::id());
    /// let tick = Element::new("Tick", 8, 8);
    /// let mut tx = untyped::broadcast::Publisher::create(&name, &tick, &Options::new())?;
    /// tx.send(&[1u64, 2, 3].map(u64::to_ne_bytes).concat())?;
    /// let mut late = untyped::broadcast::Subscriber::open_from(&name, &tick, Start::History(2), &Options::new())?;
    /// let mut buf = [0u8; 8 * 4];
    /// assert_eq!(late.try_recv(&mut buf)?, 2);
    /// assert_eq!(buf[..16], [2u64, 3].map(u64::to_ne_bytes).concat());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Sender, opts);
        let core = PublisherCore::create(name, opts, &spec, &spec)?;
        Ok(Publisher {
            core,
            size: element.size(),
        })
    }

    /// Open the existing topic `name`, whose elements must be `element`, as its publisher
    /// (its previous publisher is gone).
    ///
    /// # Errors
    /// As [`create`](Self::create), and [`Error::NotFound`].
    pub fn open(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Sender, opts);
        let core = PublisherCore::open(name, opts, &spec)?;
        Ok(Publisher {
            core,
            size: element.size(),
        })
    }

    /// The size of one element, in bytes.
    pub fn element_size(&self) -> usize {
        self.size
    }

    /// One attempt at publishing one element: `Ready` when sent, `Pending` when a Block-mode
    /// topic has no room.
    fn poll(&self, value: &[u8], probe: bool) -> Poll<()> {
        let c = &self.core;
        if !c.room(probe) {
            return Poll::Pending;
        }
        let p = c.ring.position();
        c.ring.begin(&c.slots, p);
        c.slots.store_bytes(p, value);
        c.ring.end(c.chan.header(), &c.slots, p);
        Poll::Ready(())
    }

    /// Publish as many of the elements in `values` as there is room for now, in order,
    /// without waiting (in Overwrite mode, all of them); returns how many.
    ///
    /// # Errors
    /// [`TrySendError::Full`] in Block mode when the slowest live subscriber is a ring behind
    /// (nothing was sent); [`TrySendError::Disconnected`] in a forked child's copy.
    ///
    /// # Panics
    /// If `values.len()` is not a multiple of [`element_size`](Self::element_size).
    #[track_caller]
    pub fn try_send(&mut self, values: &[u8]) -> Result<usize, TrySendError<()>> {
        let total = elements(values.len(), self.size, "values");
        if self.core.chan.forked() {
            return Err(TrySendError::Disconnected(()));
        }
        let mut sent = 0;
        for value in values.chunks_exact(self.size) {
            let r = match self.poll(value, false) {
                Poll::Pending if sent == 0 && self.core.chan.probe_due() => self.poll(value, true),
                r => r,
            };
            if matches!(r, Poll::Pending) {
                break;
            }
            sent += 1;
        }
        match sent {
            0 if total > 0 => Err(TrySendError::Full(())),
            n => Ok(n),
        }
    }

    /// Publish every element of `values`, in order, waiting for room as long as it takes
    /// (Block mode).
    ///
    /// # Errors
    /// [`SendError`]`(0)` in a forked child's copy (nothing was sent).
    ///
    /// # Panics
    /// As [`try_send`](Self::try_send).
    #[track_caller]
    pub fn send(&mut self, values: &[u8]) -> Result<(), SendError<usize>> {
        self.send_deadline(values, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// Publish every element of `values`, in order, waiting for room at most `timeout` in
    /// all (Block mode).
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`]`(n)`: the first `n` elements were sent;
    /// [`SendTimeoutError::Disconnected`]`(0)` in a forked child's copy.
    ///
    /// # Panics
    /// As [`try_send`](Self::try_send).
    #[track_caller]
    pub fn send_timeout(
        &mut self,
        values: &[u8],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<usize>> {
        self.send_deadline(values, deadline_after(timeout))
    }

    #[track_caller]
    fn send_deadline(
        &mut self,
        values: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<usize>> {
        elements(values.len(), self.size, "values");
        if self.core.chan.forked() {
            return Err(SendTimeoutError::Disconnected(0));
        }
        for (sent, value) in values.chunks_exact(self.size).enumerate() {
            if let Poll::Ready(()) = self.poll(value, false) {
                continue;
            }
            let bell = &self.core.chan.header().space_bell;
            if wait_until(bell, self.core.wait, deadline, |probe| {
                self.poll(value, probe)
            })
            .is_none()
            {
                return Err(SendTimeoutError::Timeout(sent));
            }
        }
        Ok(())
    }

    /// One poll of an async publish of `values` (whole elements): `Ready(Ok(n))` once the
    /// first `n` (at least one) are published, as many as there was room for (in Overwrite
    /// mode, all); `Ready(Err)` in a forked child's copy; `Pending` in Block mode, with the
    /// task registered to be woken when there may be room. `waiting` is this operation's state
    /// (see [`Waiting`]).
    ///
    /// # Panics
    /// As [`try_send`](Self::try_send).
    #[track_caller]
    pub fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        waiting: &mut Waiting,
        values: &[u8],
    ) -> std::task::Poll<Result<usize, SendError<()>>> {
        if elements(values.len(), self.size, "values") == 0 {
            return std::task::Poll::Ready(Ok(0));
        }
        if self.core.chan.forked() {
            return std::task::Poll::Ready(Err(SendError(())));
        }
        let mut chunks = values.chunks_exact(self.size);
        let first = chunks.next().expect("at least one element");
        let bell = &self.core.chan.header().space_bell;
        match waiting
            .wait()
            .poll(cx, bell, |probe| self.poll(first, probe))
        {
            std::task::Poll::Ready(()) => {}
            std::task::Poll::Pending => return std::task::Poll::Pending,
        }
        let mut sent = 1;
        for value in chunks {
            if matches!(self.poll(value, false), Poll::Pending) {
                break;
            }
            sent += 1;
        }
        std::task::Poll::Ready(Ok(sent))
    }

    /// Publish every element of `values` asynchronously, in order (see
    /// [`poll_send`](Self::poll_send)). Dropping the future leaves the elements published so
    /// far published.
    ///
    /// # Errors
    /// [`SendError`]`(0)` in a forked child's copy.
    ///
    /// # Panics
    /// As [`try_send`](Self::try_send).
    pub async fn send_async(&mut self, values: &[u8]) -> Result<(), SendError<usize>> {
        let size = self.size;
        crate::untyped::send_all_async(values, size, move |cx, w, rest| self.poll_send(cx, w, rest))
            .await
    }

    /// How many subscribers are attached and alive now (asking the kernel about each), not
    /// counting evicted ones.
    pub fn subscriber_count(&self) -> usize {
        self.core.subscriber_count()
    }

    /// Wait until at least `n` subscribers are attached and alive, at most `timeout`.
    ///
    /// # Errors
    /// [`WaitForPeerError::Timeout`] if fewer attached in time;
    /// [`WaitForPeerError::Disconnected`] in a forked child's copy.
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

    /// How many elements the ring holds.
    pub fn capacity(&self) -> usize {
        self.core.chan.geo.capacity as usize
    }

    /// The topic's overflow mode.
    pub fn overflow(&self) -> Overflow {
        self.core.overflow()
    }
}

/// Copy the element at `c` into `out`.
fn into(out: &mut [u8]) -> impl FnMut(&Slots, u64) + '_ {
    move |s: &Slots, c| s.load_bytes(c, out)
}

impl Subscriber {
    /// Open the topic `name`, whose elements must be `element`, and subscribe, starting at
    /// the next element published ([`Start::Latest`]).
    ///
    /// # Errors
    /// As [`broadcast::Subscriber::open`](super::Subscriber::open); [`Error::InvalidOptions`]
    /// for an element that cannot be.
    pub fn open(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        Self::open_from(name, element, Start::Latest, opts)
    }

    /// Open the topic `name` and subscribe, starting where `start` says.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_from(
        name: &str,
        element: &Element,
        start: Start,
        opts: &Options,
    ) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Receiver, opts);
        let chan = Chan::open(name, opts, &spec)?;
        Ok(Subscriber {
            core: SubscriberCore::from_chan(chan, start, opts.wait, Some(opts))?,
            size: element.size(),
        })
    }

    /// The size of one element, in bytes.
    pub fn element_size(&self) -> usize {
        self.size
    }

    /// After a first element in `buf[..size]`: as many more as are there now, as `buf` holds;
    /// returns how many in all. A lag found on the way is reported by the next receive.
    fn more(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 1;
        for out in buf.chunks_exact_mut(self.size).skip(1) {
            match self.core.poll(false, &mut into(out)) {
                Poll::Ready(Ok(())) => n += 1,
                Poll::Ready(Err(RecvError::Lagged(lost))) => {
                    // The cursor moved on already: report the loss with the next receive.
                    self.core.lag_pending.set(lost);
                    break;
                }
                _ => break,
            }
        }
        n
    }

    /// Receive the elements there now, as many as `buf` holds, without waiting; returns how
    /// many (at least one, unless `buf` is empty), copied to the start of `buf`. Bytes of
    /// `buf` after those may have been written too (an element the publisher overwrote as it
    /// was copied is thrown away, and reported as lost), as may the first element's on an
    /// error.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if there is none now; [`TryRecvError::Lagged`]`(n)` if `n`
    /// elements were overwritten before we read them (the next receive goes on);
    /// [`TryRecvError::Evicted`]; [`TryRecvError::Disconnected`] once the publisher is gone
    /// and everything was read.
    ///
    /// # Panics
    /// If `buf.len()` is not a multiple of [`element_size`](Self::element_size).
    #[track_caller]
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        if self.empty(buf) {
            return Ok(0);
        }
        self.core.try_recv_with(&mut into(&mut buf[..self.size]))?;
        Ok(self.more(buf))
    }

    /// Receive at least one element, waiting as long as it takes, and whatever else is there
    /// then, as many as `buf` holds; returns how many.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), but for `Empty`.
    ///
    /// # Panics
    /// As [`try_recv`](Self::try_recv).
    #[track_caller]
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.recv_deadline(buf, None).map_err(RecvError::from)
    }

    /// As [`recv`](Self::recv), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if none came; the others as [`recv`](Self::recv).
    ///
    /// # Panics
    /// As [`try_recv`](Self::try_recv).
    #[track_caller]
    pub fn recv_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_deadline(buf, deadline_after(timeout))
    }

    #[track_caller]
    fn recv_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError> {
        if self.empty(buf) {
            return Ok(0);
        }
        self.core
            .recv_deadline_with(deadline, &mut into(&mut buf[..self.size]))?;
        Ok(self.more(buf))
    }

    /// Is `buf` empty (then a receive returns `Ok(0)` at once)? Panics if it is not whole
    /// elements.
    #[track_caller]
    fn empty(&self, buf: &[u8]) -> bool {
        elements(buf.len(), self.size, "buf") == 0
    }

    /// One poll of an async receive into `buf`: `Ready(Ok(n))` with the first `n` elements of
    /// `buf` received (at least one, as many as were there); `Ready(Err)` with a lag, an
    /// eviction, or once the publisher is gone and everything was read (at once in a forked
    /// child's copy); `Pending` with the task registered to be woken when there may be one.
    /// `waiting` is this operation's state (see [`Waiting`]).
    ///
    /// # Panics
    /// As [`try_recv`](Self::try_recv).
    #[track_caller]
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        waiting: &mut Waiting,
        buf: &mut [u8],
    ) -> std::task::Poll<Result<usize, RecvError>> {
        if self.empty(buf) {
            return std::task::Poll::Ready(Ok(0));
        }
        if self.core.chan.forked() {
            return std::task::Poll::Ready(Err(RecvError::Disconnected));
        }
        let bell = &self.core.chan.header().data_bell;
        let first = &mut buf[..self.size];
        match waiting
            .wait()
            .poll(cx, bell, |probe| self.core.poll(probe, &mut into(first)))
        {
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(self.more(buf))),
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    /// Receive asynchronously into `buf` (see [`poll_recv`](Self::poll_recv)): at least one
    /// element, and whatever else is there then; returns how many.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Panics
    /// As [`try_recv`](Self::try_recv).
    pub async fn recv_async(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let mut waiting = Waiting::new();
        std::future::poll_fn(|cx| self.poll_recv(cx, &mut waiting, buf)).await
    }

    /// Elements published and not yet read by this subscriber (at most the ring's capacity).
    pub fn lag(&self) -> u64 {
        self.core.lag()
    }

    /// How many elements the ring holds.
    pub fn capacity(&self) -> usize {
        self.core.chan.geo.capacity as usize
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
use shmchan::{untyped::{self, Element}, Options};
# let name = format!("doc-untyped-bcast-wait-{}", std::process::id());
let e = Element::new("u64", 8, 8);
let tx = untyped::broadcast::Publisher::create(&name, &e, &Options::new())?;
let rx = untyped::broadcast::Subscriber::open(&name, &e, &Options::new())?;
rx.wait_for_peer(Duration::from_secs(1))?;
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("untyped::broadcast::Publisher")
            .field("name", &self.core.chan.name)
            .field("backend", &self.core.chan.backend)
            .field("element_size", &self.size)
            .field("capacity", &self.capacity())
            .field("overflow", &self.overflow())
            .finish_non_exhaustive()
    }
}

crate::untyped::debug_impl!(Subscriber, "untyped::broadcast::Subscriber");
