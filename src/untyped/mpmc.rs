//! MPMC channels of an [`Element`] known at run time: the peers of
//! [`mpmc::Sender<T>`](crate::mpmc::Sender) and [`mpmc::Receiver<T>`](crate::mpmc::Receiver)
//! for a program that has no `T` (see [the module](super)).

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::task::Context;

use super::{Element, Waiting, elements};
use crate::chan::{Chan, Role};
use crate::error::{
    Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::handle;
use crate::mpmc::{Shared, spec};
use crate::options::{Options, WaitStrategy};
use crate::wait::Poll;

/// A sending end of an MPMC channel of [`Element`]s: `Clone`, `Send` and `Sync`, like
/// [`mpmc::Sender`](crate::mpmc::Sender), whose behaviour it shares.
#[derive(Clone)]
pub struct Sender {
    shared: Arc<Shared>,
    size: usize,
}

/// A receiving end of an MPMC channel of [`Element`]s: `Clone`, `Send` and `Sync`, like
/// [`mpmc::Receiver`](crate::mpmc::Receiver).
#[derive(Clone)]
pub struct Receiver {
    shared: Arc<Shared>,
    size: usize,
}

impl Sender {
    /// Create the channel `name` (exclusively) for elements `element`, and attach as a
    /// sender.
    ///
    /// # Errors
    /// As [`mpmc::Sender::create`](crate::mpmc::Sender::create); [`Error::InvalidOptions`]
    /// for an element that cannot be (see [`Element`]).
    pub fn create(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Sender, opts);
        Ok(Sender {
            shared: Shared::new(Chan::create(name, opts, &spec)?, opts.wait),
            size: element.size(),
        })
    }

    /// Open the existing channel `name`, whose elements must be `element`, and attach as a
    /// sender.
    ///
    /// # Errors
    /// As [`mpmc::Sender::open`](crate::mpmc::Sender::open): [`Error::Incompatible`] if the
    /// channel's payload has another name, size or alignment.
    pub fn open(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Sender, opts);
        Ok(Sender {
            shared: Shared::new(Chan::open(name, opts, &spec)?, opts.wait),
            size: element.size(),
        })
    }

    /// The size of one element, in bytes.
    pub fn element_size(&self) -> usize {
        self.size
    }

    /// One attempt: as many elements of `values` as there is room for, each published as it
    /// is written.
    fn poll(&self, values: &[u8], probe: bool) -> Poll<Result<usize, ()>> {
        let s = &*self.shared;
        let hdr = s.chan.header();
        handle::poll_send(&s.chan, (), probe, |probe| {
            let mut n = 0;
            for value in values.chunks_exact(self.size) {
                match s
                    .ring
                    .claim(hdr, &s.slots, |o, g| s.chan.owner_gone(o, g, probe))
                {
                    Ok(pos) => {
                        // The claim made the slot ours (WRITING(pos, me)) until it is
                        // published; `value` is one payload of the geometry's size.
                        s.slots.store_bytes(pos, value);
                        // A failed publish: a repairer took the slot (only corruption marks a
                        // live endpoint gone); that element was not sent.
                        match s.ring.publish(hdr, &s.slots, pos) {
                            Ok(()) => n += 1,
                            Err(_) if n > 0 => break, // what was sent is reported now
                            Err(e) => return Err(e),
                        }
                    }
                    // After some were sent, any refusal ends the batch with what was sent;
                    // the next call meets it again.
                    Err(_) if n > 0 => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(n)
        })
    }

    /// As for the typed sender: probe the receivers every checkpoint of the ring.
    fn checkpoint(&self, before: u64) {
        let chan = &self.shared.chan;
        // Relaxed: a hint for pacing only.
        let tail = chan.header().tail.load(crate::sync::Ordering::Relaxed);
        if crate::ring::passes_checkpoint(before, tail) {
            chan.checkpoint();
        }
    }

    fn tail(&self) -> u64 {
        // Relaxed: a hint for pacing only (see `checkpoint`).
        let hdr = self.shared.chan.header();
        hdr.tail.load(crate::sync::Ordering::Relaxed)
    }

    /// Send as many of the elements in `values` as there is room for now, in order (as other
    /// senders allow), without waiting; returns how many were sent (at least one, unless `values` is empty).
    ///
    /// # Errors
    /// [`TrySendError::Full`] if there was room for none, [`TrySendError::Disconnected`] if
    /// every receiver is gone.
    ///
    /// # Panics
    /// If `values.len()` is not a multiple of [`element_size`](Self::element_size).
    #[track_caller]
    pub fn try_send(&self, values: &[u8]) -> Result<usize, TrySendError<()>> {
        if elements(values.len(), self.size, "values") == 0 {
            return Ok(0);
        }
        let before = self.tail();
        let r = handle::try_send(&self.shared.chan, (), |(), probe| self.poll(values, probe));
        self.checkpoint(before);
        r
    }

    /// Send every element of `values`, in order, waiting for room as long as it takes.
    ///
    /// # Errors
    /// [`SendError`]`(n)` if every receiver is gone: the first `n` elements were sent.
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
        let s = &*self.shared;
        super::send_all(values, self.size, |rest| {
            let before = self.tail();
            let r = handle::send_deadline(&s.chan, &s.wait, (), deadline, |(), probe| {
                self.poll(rest, probe)
            });
            self.checkpoint(before);
            r
        })
    }

    /// One poll of an async send of `values` (whole elements): `Ready(Ok(n))` once the first
    /// `n` (at least one) are sent, as many as there was room for; `Ready(Err)` if every
    /// receiver is gone (or died asleep: see `mpmc::Sender::send`), at once in a forked
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
        let chan = &self.shared.chan;
        if chan.forked() || handle::receivers_died_asleep(chan) {
            return std::task::Poll::Ready(Err(SendError(())));
        }
        let before = self.tail();
        let bell = &chan.header().space_bell;
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
    /// [`SendError`]`(n)` if every receiver is gone: the first `n` elements were sent.
    ///
    /// # Panics
    /// As [`try_send`](Self::try_send).
    pub async fn send_async(&self, values: &[u8]) -> Result<(), SendError<usize>> {
        super::send_all_async(values, self.size, |cx, w, rest| self.poll_send(cx, w, rest)).await
    }

    fn chan(&self) -> &Chan {
        &self.shared.chan
    }

    fn wait_strategy(&self) -> WaitStrategy {
        self.shared.wait
    }

    crate::handle::queries!("receiver");

    crate::handle::wait_for_peer!(
        "receiver",
        space_bell,
        r#"
```
use std::time::Duration;
use shmchan::{untyped::{self, Element}, Options};
# let name = format!("doc-untyped-mpmc-wait-{}", std::process::id());
let e = Element::new("u64", 8, 8);
let tx = untyped::mpmc::Sender::create(&name, &e, &Options::new())?;
let rx = untyped::mpmc::Receiver::open(&name, &e, &Options::new())?; // usually another process
tx.wait_for_peer(Duration::from_secs(1))?;
assert!(tx.is_connected());
# drop(rx);
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

impl Receiver {
    /// Create the channel `name` (exclusively) for elements `element`, and attach as a
    /// receiver.
    ///
    /// # Errors
    /// As [`Sender::create`].
    pub fn create(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Receiver, opts);
        Ok(Receiver {
            shared: Shared::new(Chan::create(name, opts, &spec)?, opts.wait),
            size: element.size(),
        })
    }

    /// Open the existing channel `name`, whose elements must be `element`, and attach as a
    /// receiver.
    ///
    /// # Errors
    /// As [`Sender::open`].
    pub fn open(name: &str, element: &Element, opts: &Options) -> Result<Self, Error> {
        let spec = spec(element.fingerprint()?, Role::Receiver, opts);
        Ok(Receiver {
            shared: Shared::new(Chan::open(name, opts, &spec)?, opts.wait),
            size: element.size(),
        })
    }

    /// The size of one element, in bytes.
    pub fn element_size(&self) -> usize {
        self.size
    }

    /// One attempt: the elements ready now, as many as `buf` holds, each taken, copied out
    /// and freed in turn.
    fn poll(&self, buf: &mut [u8], probe: bool) -> Poll<Result<usize, ()>> {
        let s = &*self.shared;
        let hdr = s.chan.header();
        handle::poll_recv(&s.chan, probe, |probe| {
            let mut n = 0;
            for out in buf.chunks_exact_mut(self.size) {
                match s.ring.take(hdr, &s.slots, n == 0 && !probe, |o, g| {
                    s.chan.owner_gone(o, g, probe)
                }) {
                    Ok(pos) => {
                        // The take made the slot ours (READING(pos, me)) until we free it;
                        // `out` is one payload of the geometry's size.
                        s.slots.load_bytes(pos, out);
                        // A failed free: a repairer took the slot while we read it (only
                        // corruption marks a live endpoint gone), so the copy may be torn and
                        // is not delivered (as in the typed `pop`); those before it are.
                        match s.ring.free(hdr, &s.slots, pos) {
                            Ok(()) => n += 1,
                            Err(_) if n > 0 => break,
                            Err(e) => return Err(e),
                        }
                    }
                    // After some were received, any refusal ends the batch with them; the
                    // next call meets it again.
                    Err(_) if n > 0 => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(n)
        })
    }

    /// Receive the elements that are ready now, as many as `buf` holds, without waiting;
    /// returns how many (at least one, unless `buf` is empty),
    /// copied to the start of `buf`.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if none is ready, [`TryRecvError::Disconnected`] if the ring
    /// is empty and every sender is gone.
    ///
    /// # Panics
    /// If `buf.len()` is not a multiple of [`element_size`](Self::element_size).
    #[track_caller]
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        if self.empty(buf) {
            return Ok(0);
        }
        handle::try_recv(&self.shared.chan, |probe| self.poll(buf, probe))
    }

    /// Receive at least one element, waiting as long as it takes, and whatever else is ready
    /// then, as many as `buf` holds; returns how many.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and every sender is gone.
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
        let s = &*self.shared;
        handle::recv_deadline(&s.chan, &s.wait, deadline, |probe| self.poll(buf, probe))
    }

    /// Is `buf` empty (then a receive returns `Ok(0)` at once)? Panics if it is not whole
    /// elements.
    #[track_caller]
    fn empty(&self, buf: &[u8]) -> bool {
        elements(buf.len(), self.size, "buf") == 0
    }

    /// One poll of an async receive into `buf`: `Ready(Ok(n))` with the first `n` elements
    /// of `buf` received (at least one, as many as were ready); `Ready(Err)` once the ring is
    /// empty and every sender is gone, at once in a forked child's copy; `Pending` with the task
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
        let chan = &self.shared.chan;
        if chan.forked() {
            return std::task::Poll::Ready(Err(RecvError));
        }
        let bell = &chan.header().data_bell;
        waiting
            .wait()
            .poll(cx, bell, |probe| self.poll(buf, probe))
            .map(|r| r.map_err(|()| RecvError))
    }

    /// Receive asynchronously into `buf` (see [`poll_recv`](Self::poll_recv)): at least one
    /// element, and whatever else is ready then; returns how many. Cancellation-safe.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and every sender is gone.
    ///
    /// # Panics
    /// As [`try_recv`](Self::try_recv).
    pub async fn recv_async(&self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let mut waiting = Waiting::new();
        std::future::poll_fn(|cx| self.poll_recv(cx, &mut waiting, buf)).await
    }

    fn chan(&self) -> &Chan {
        &self.shared.chan
    }

    fn wait_strategy(&self) -> WaitStrategy {
        self.shared.wait
    }

    crate::handle::queries!("sender");

    crate::handle::wait_for_peer!(
        "sender",
        data_bell,
        r#"
```
use std::time::Duration;
use shmchan::{untyped::{self, Element}, Options, WaitForPeerError};
# let name = format!("doc-untyped-mpmc-rwait-{}", std::process::id());
let e = Element::new("u64", 8, 8);
let rx = untyped::mpmc::Receiver::create(&name, &e, &Options::new())?;
assert_eq!(rx.wait_for_peer(Duration::from_millis(10)), Err(WaitForPeerError::Timeout));
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

super::debug_impl!(Sender, "untyped::mpmc::Sender");
super::debug_impl!(Receiver, "untyped::mpmc::Receiver");
