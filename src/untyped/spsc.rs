//! SPSC channels of an [`Element`] known at run time: the peers of
//! [`spsc::Sender<T>`](crate::spsc::Sender) and [`spsc::Receiver<T>`](crate::spsc::Receiver)
//! for a program that has no `T` (see [the module](super)).

use std::time::{Duration, Instant};

use std::task::Context;

use super::{Element, Waiting, elements};
use crate::chan::{Chan, Role};
use crate::error::{
    Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::handle;
use crate::options::{Options, WaitStrategy};
use crate::ring::{Slots, spsc as ring};
use crate::spsc::{corrupt, spec};
use crate::wait::Poll;

/// The sending end of an SPSC channel of [`Element`]s.
///
/// `Send` but not `Sync`, like [`spsc::Sender`](crate::spsc::Sender), whose behaviour it
/// shares (disconnection, a receiver that comes back, liveness).
pub struct Sender {
    ring: ring::Producer,
    slots: Slots,
    wait: WaitStrategy,
    chan: Chan,
    size: usize,
}

impl Drop for Sender {
    fn drop(&mut self) {
        // As the typed sender's.
        if !self.chan.forked() {
            self.ring.store_tail(self.chan.header());
        }
    }
}

/// The receiving end of an SPSC channel of [`Element`]s.
///
/// `Send` but not `Sync`, like [`spsc::Receiver`](crate::spsc::Receiver).
pub struct Receiver {
    ring: ring::Consumer,
    slots: Slots,
    wait: WaitStrategy,
    chan: Chan,
    size: usize,
}

impl Sender {
    /// Create the channel `name` (exclusively) for elements `element`, and attach as its
    /// sender.
    ///
    /// # Errors
    /// As [`spsc::Sender::create`](crate::spsc::Sender::create); [`Error::InvalidOptions`]
    /// for an element that cannot be (see [`Element`]).
    pub fn create(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Sender);
        Self::from_chan(Chan::create(name, opts, &spec)?, opts.wait, element.size())
    }

    /// Open the existing channel `name`, whose elements must be `element`, and attach as its
    /// sender.
    ///
    /// # Errors
    /// As [`spsc::Sender::open`](crate::spsc::Sender::open): [`Error::Incompatible`] if the
    /// channel's payload has another name, size or alignment.
    pub fn open(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Sender);
        Self::from_chan(Chan::open(name, opts, &spec)?, opts.wait, element.size())
    }

    fn from_chan(chan: Chan, wait: WaitStrategy, size: usize) -> Result<Self, Error> {
        let slots = Slots::new(chan.region(), &chan.geo);
        let ring = ring::Producer::new(chan.header(), &slots, chan.geo.capacity)
            .map_err(|_| corrupt(&chan))?;
        Ok(Sender {
            ring,
            slots,
            wait,
            chan,
            size,
        })
    }

    /// The size of one element, in bytes.
    pub fn element_size(&self) -> usize {
        self.size
    }

    /// One attempt: as many elements of `values` as there is room for, as the typed
    /// `send_slice` does (each slot's stamp published as it is written; `tail` and the
    /// doorbell once for the batch).
    fn poll(&self, values: &[u8], probe: bool) -> Poll<Result<usize, ()>> {
        let size = self.size;
        let write = |pos, i: usize| {
            self.slots
                .store_bytes(pos, &values[i * size..(i + 1) * size]);
        };
        handle::poll_send(&self.chan, (), probe, |_| {
            // SAFETY: this handle is the channel's only sender (the endpoint table admits one);
            // `write` writes one element, the whole payload of the geometry it was validated
            // for, into the slot it is given, and nothing else.
            unsafe {
                self.ring.push_slice_with(
                    self.chan.header(),
                    &self.slots,
                    values.len() / size,
                    write,
                )
            }
        })
    }

    /// As for the typed sender: probe the receiver when the position passed a checkpoint.
    fn checkpoint(&self, before: u64) {
        if crate::ring::passes_checkpoint(before, self.ring.position()) {
            self.chan.checkpoint();
        }
    }

    /// Send as many of the elements in `values` as there is room for now, in order, without
    /// waiting; returns how many were sent (at least one, unless `values` is empty).
    ///
    /// # Errors
    /// [`TrySendError::Full`] if there was room for none, [`TrySendError::Disconnected`] if
    /// the receiver is gone.
    ///
    /// # Panics
    /// If `values.len()` is not a multiple of [`element_size`](Self::element_size).
    #[track_caller]
    pub fn try_send(&self, values: &[u8]) -> Result<usize, TrySendError<()>> {
        if elements(values.len(), self.size, "values") == 0 {
            return Ok(0);
        }
        let before = self.ring.position();
        let r = handle::try_send(&self.chan, (), |(), probe| self.poll(values, probe));
        self.checkpoint(before);
        r
    }

    /// Send every element of `values`, in order, waiting for room as long as it takes.
    ///
    /// # Errors
    /// [`SendError`]`(n)` if the receiver is gone: the first `n` elements were sent.
    ///
    /// # Panics
    /// As [`try_send`](Self::try_send).
    #[track_caller]
    pub fn send(&self, values: &[u8]) -> Result<(), SendError<usize>> {
        self.send_deadline(values, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// Send every element of `values`, in order, waiting for room at most `timeout` in all.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`]`(n)` or [`SendTimeoutError::Disconnected`]`(n)`: the
    /// first `n` elements were sent.
    ///
    /// # Panics
    /// As [`try_send`](Self::try_send).
    #[track_caller]
    pub fn send_timeout(
        &self,
        values: &[u8],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<usize>> {
        self.send_deadline(values, crate::chan::deadline_after(timeout))
    }

    #[track_caller]
    fn send_deadline(
        &self,
        values: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<usize>> {
        super::send_all(values, self.size, |rest| {
            let before = self.ring.position();
            let r = handle::send_deadline(&self.chan, &self.wait, (), deadline, |(), probe| {
                self.poll(rest, probe)
            });
            self.checkpoint(before);
            r
        })
    }

    /// One poll of an async send of `values` (whole elements): `Ready(Ok(n))` once the first
    /// `n` (at least one) are sent, as many as there was room for; `Ready(Err)` if the
    /// receiver is gone (or died asleep: see `spsc::Sender::send`), at once in a forked
    /// child's copy; `Pending` with the task registered to be woken when there may be room.
    /// `waiting` is this operation's state (see [`Waiting`]).
    ///
    /// # Panics
    /// As [`try_send`](Self::try_send).
    #[track_caller]
    pub fn poll_send(
        &self,
        cx: &mut Context<'_>,
        waiting: &mut Waiting,
        values: &[u8],
    ) -> std::task::Poll<Result<usize, SendError<()>>> {
        if elements(values.len(), self.size, "values") == 0 {
            return std::task::Poll::Ready(Ok(0));
        }
        if self.chan.forked() || handle::receivers_died_asleep(&self.chan) {
            return std::task::Poll::Ready(Err(SendError(())));
        }
        let before = self.ring.position();
        let bell = &self.chan.header().space_bell;
        let r = waiting
            .wait()
            .poll(cx, bell, |probe| self.poll(values, probe));
        self.checkpoint(before);
        r.map(|r| r.map_err(|()| SendError(())))
    }

    /// Send every element of `values` asynchronously, in order (see [`poll_send`](Self::poll_send)).
    /// Dropping the future leaves the elements sent so far sent.
    ///
    /// # Errors
    /// [`SendError`]`(n)` if the receiver is gone: the first `n` elements were sent.
    ///
    /// # Panics
    /// As [`try_send`](Self::try_send).
    pub async fn send_async(&mut self, values: &[u8]) -> Result<(), SendError<usize>> {
        let size = self.size;
        // `move`: the future holds `&mut self`, never `&self` (a `Sender` is not `Sync`), so
        // it is `Send`.
        super::send_all_async(values, size, move |cx, w, rest| self.poll_send(cx, w, rest)).await
    }

    fn chan(&self) -> &Chan {
        &self.chan
    }

    fn slots(&self) -> &Slots {
        &self.slots
    }

    fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    crate::handle::queries!("receiver", spsc);

    crate::handle::wait_for_peer!(
        "receiver",
        space_bell,
        r#"
```
use std::time::Duration;
use shmchan::{untyped::{self, Element}, Options};
# let name = format!("doc-untyped-spsc-wait-{}", std::process::id());
let e = Element::new("u64", 8, 8);
let tx = untyped::spsc::Sender::create(&name, &e, &Options::new())?;
let rx = untyped::spsc::Receiver::open(&name, &e, &Options::new())?; // usually another process
tx.wait_for_peer(Duration::from_secs(1))?;
assert!(tx.is_connected());
# drop(rx);
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

impl Receiver {
    /// Create the channel `name` (exclusively) for elements `element`, and attach as its
    /// receiver.
    ///
    /// # Errors
    /// As [`Sender::create`].
    pub fn create(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Receiver);
        Self::from_chan(Chan::create(name, opts, &spec)?, opts.wait, element.size())
    }

    /// Open the existing channel `name`, whose elements must be `element`, and attach as its
    /// receiver.
    ///
    /// # Errors
    /// As [`Sender::open`].
    pub fn open(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Receiver);
        Self::from_chan(Chan::open(name, opts, &spec)?, opts.wait, element.size())
    }

    fn from_chan(chan: Chan, wait: WaitStrategy, size: usize) -> Result<Self, Error> {
        let slots = Slots::new(chan.region(), &chan.geo);
        let ring =
            ring::Consumer::new(chan.header(), chan.geo.capacity).map_err(|_| corrupt(&chan))?;
        Ok(Receiver {
            ring,
            slots,
            wait,
            chan,
            size,
        })
    }

    /// The size of one element, in bytes.
    pub fn element_size(&self) -> usize {
        self.size
    }

    /// One attempt: the published run of elements at our position, as many as `buf` holds,
    /// copied out, then their slots freed at once (one store of `head`, one doorbell), as the
    /// typed `recv_slice` does.
    fn poll(&self, buf: &mut [u8], probe: bool) -> Poll<Result<usize, ()>> {
        let size = self.size;
        let want = buf.len() / size;
        handle::poll_recv(&self.chan, probe, |_| {
            let read = |pos, i: usize| {
                self.slots
                    .load_bytes(pos, &mut buf[i * size..(i + 1) * size]);
            };
            // SAFETY: this handle is the channel's only receiver; `read` only reads the slot
            // it is given (one element, the geometry's payload).
            unsafe {
                self.ring
                    .pop_slice_with(self.chan.header(), &self.slots, want, read)
            }
        })
    }

    /// Receive the elements that are ready now, as many as `buf` holds, without waiting;
    /// returns how many (at least one, unless `buf` is empty),
    /// copied to the start of `buf`.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if none is ready, [`TryRecvError::Disconnected`] if the ring
    /// is empty and the sender is gone.
    ///
    /// # Panics
    /// If `buf.len()` is not a multiple of [`element_size`](Self::element_size).
    #[track_caller]
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        if self.empty(buf) {
            return Ok(0);
        }
        handle::try_recv(&self.chan, |probe| self.poll(buf, probe))
    }

    /// Receive at least one element, waiting as long as it takes, and whatever else is ready
    /// then, as many as `buf` holds; returns how many.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and the sender is gone.
    ///
    /// # Panics
    /// As [`try_recv`](Self::try_recv).
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.recv_deadline(buf, None).map_err(|_| RecvError)
    }

    /// As [`recv`](Self::recv), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    ///
    /// # Panics
    /// As [`try_recv`](Self::try_recv).
    #[track_caller]
    pub fn recv_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_deadline(buf, crate::chan::deadline_after(timeout))
    }

    #[track_caller]
    fn recv_deadline(
        &self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError> {
        if self.empty(buf) {
            return Ok(0);
        }
        handle::recv_deadline(&self.chan, &self.wait, deadline, |probe| {
            self.poll(buf, probe)
        })
    }

    /// Is `buf` empty (then a receive returns `Ok(0)` at once)? Panics if it is not whole
    /// elements.
    #[track_caller]
    fn empty(&self, buf: &[u8]) -> bool {
        elements(buf.len(), self.size, "buf") == 0
    }

    /// One poll of an async receive into `buf`: `Ready(Ok(n))` with the first `n` elements
    /// of `buf` received (at least one, as many as were ready); `Ready(Err)` once the ring is
    /// empty and the sender is gone, at once in a forked child's copy; `Pending` with the task
    /// registered to be woken when there may be one. Nothing is taken but in the poll that
    /// returns it, so dropping the operation loses nothing. `waiting` is this operation's
    /// state (see [`Waiting`]).
    ///
    /// # Panics
    /// As [`try_recv`](Self::try_recv).
    #[track_caller]
    pub fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        waiting: &mut Waiting,
        buf: &mut [u8],
    ) -> std::task::Poll<Result<usize, RecvError>> {
        if self.empty(buf) {
            return std::task::Poll::Ready(Ok(0));
        }
        if self.chan.forked() {
            return std::task::Poll::Ready(Err(RecvError));
        }
        let bell = &self.chan.header().data_bell;
        waiting
            .wait()
            .poll(cx, bell, |probe| self.poll(buf, probe))
            .map(|r| r.map_err(|()| RecvError))
    }

    /// Receive asynchronously into `buf` (see [`poll_recv`](Self::poll_recv)): at least one
    /// element, and whatever else is ready then; returns how many. Cancellation-safe.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and the sender is gone.
    ///
    /// # Panics
    /// As [`try_recv`](Self::try_recv).
    pub async fn recv_async(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let mut waiting = Waiting::new();
        // `move`: the future holds `&mut self`, never `&self` (a `Receiver` is not `Sync`), so
        // it is `Send`.
        let this = &mut *self;
        std::future::poll_fn(move |cx| this.poll_recv(cx, &mut waiting, buf)).await
    }

    fn chan(&self) -> &Chan {
        &self.chan
    }

    fn slots(&self) -> &Slots {
        &self.slots
    }

    fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    crate::handle::queries!("sender", spsc);

    crate::handle::wait_for_peer!(
        "sender",
        data_bell,
        r#"
```
use std::time::Duration;
use shmchan::{untyped::{self, Element}, Options, WaitForPeerError};
# let name = format!("doc-untyped-spsc-rwait-{}", std::process::id());
let e = Element::new("u64", 8, 8);
let rx = untyped::spsc::Receiver::create(&name, &e, &Options::new())?;
assert_eq!(rx.wait_for_peer(Duration::from_millis(10)), Err(WaitForPeerError::Timeout));
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

super::debug_impl!(Sender, "untyped::spsc::Sender");
super::debug_impl!(Receiver, "untyped::spsc::Receiver");
