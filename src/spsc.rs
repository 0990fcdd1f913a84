//! Single-producer single-consumer channels: one [`Sender`] and one [`Receiver`], in the same
//! process or in two.
//!
//! Either side may [`create`](Sender::create) the channel and the other
//! [`open`](Receiver::open) it by name. The ring is Lamport's, with each side caching the
//! other's position, so a message costs one slot write, one Release store and (only when the
//! ring looked full or empty) one read of the peer's position.
//!
//! For streams, [`Sender::send_slice`] / [`Receiver::recv_slice`] (and their `try_` and
//! `_timeout` forms) move many messages per call: the position and the doorbell are updated
//! once per batch (8-byte messages between two processes: about 300 M/s in batches of 64
//! against 240 M/s one by one, `cargo bench --bench throughput`).
//!
//! Large messages need not be copied at all: [`Sender::loan`] lends the next slot to be
//! written in place ([`Loan`], published by [`Loan::commit`]) and [`Receiver::recv_ref`] lends
//! the next message to be read in place ([`Ref`], its slot freed when it drops); see the
//! [`Loan`] and [`Ref`] docs for what a reference into shared memory guarantees.
//!
//! ```
//! use shmchan::{spsc, Options};
//! # let name = format!("doc-spsc-{}", std::process::id());
//!
//! let tx = spsc::Sender::<u64>::create(&name, &Options::new().capacity(64))?;
//! let rx = spsc::Receiver::<u64>::open(&name, &Options::new())?; // usually in another process
//! tx.send(42)?;
//! assert_eq!(rx.recv()?, 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

mod async_io;
mod loan;
pub use async_io::{RecvFuture, RecvStream, SendFuture};
pub use loan::{Loan, Ref};

use crate::Pod;
use crate::chan::{Chan, Role, Spec, payload};
use crate::error::{
    Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::handle;
use crate::layout::{Fingerprint, Kind};
use crate::options::{Options, WaitStrategy};
use crate::ring::{LARGE, Slots, spsc as ring};
use crate::wait::Poll;

pub(crate) fn spec(fp: Fingerprint, role: Role) -> Spec {
    Spec {
        kind: Kind::Spsc,
        role,
        fp,
        max_senders: 1,
        max_receivers: 1,
        overflow: (0, 0),
    }
}

pub(crate) fn corrupt(chan: &Chan) -> Error {
    Error::Incompatible {
        name: chan.name.clone(),
        backend: chan.backend.clone().unwrap_or_default(),
        detail: "corrupt header: the ring positions are impossible".into(),
    }
}

/// Create an SPSC channel inside this process (on the heap, no name), like
/// `crossbeam_channel::bounded`. Capacity is rounded up to a power of two.
///
/// # Errors
/// [`Error::InvalidOptions`] if `capacity` is 0 or above [`Options::MAX_CAPACITY`].
///
/// ```
/// let (tx, rx) = shmchan::spsc::channel::<u32>(4)?;
/// std::thread::spawn(move || tx.send(7).unwrap());
/// assert_eq!(rx.recv()?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn channel<T: Pod>(capacity: usize) -> Result<(Sender<T>, Receiver<T>), Error> {
    let (a, b) = Chan::heap_pair(capacity, &spec(Fingerprint::of::<T>(), Role::Sender))?;
    let wait = WaitStrategy::default();
    Ok((Sender::from_chan(a, wait)?, Receiver::from_chan(b, wait)?))
}

/// For the loom handshake model: a creator (returns the sender) and an opener (waits for the
/// header, validates it, returns the receiver) over one heap region, to run on two threads.
#[cfg(loom)]
#[doc(hidden)]
#[allow(clippy::type_complexity)]
pub fn loom_racing_pair<T: Pod>(
    capacity: usize,
) -> (
    impl FnOnce() -> Sender<T> + Send,
    impl FnOnce() -> Result<Receiver<T>, Error> + Send,
) {
    let tx_spec = spec(Fingerprint::of::<T>(), Role::Sender);
    let (a, b, geo) = Chan::heap_racing(capacity, &tx_spec).unwrap();
    let create = move || {
        let chan = Chan::init(a, crate::region::Gate::Heap, "loom", None, geo, &tx_spec).unwrap();
        Sender::from_chan(chan, WaitStrategy::Park).unwrap()
    };
    let open = move || {
        let chan = Chan::join_heap(
            b,
            "loom",
            &spec(Fingerprint::of::<T>(), Role::Receiver),
            None,
        )?;
        Receiver::from_chan(chan, WaitStrategy::Park)
    };
    (create, open)
}

#[cfg(loom)]
impl crate::chan::LoomReopen {
    /// Loom only: attach a new SPSC receiver (the place of one that left or died).
    pub fn spsc_receiver<T: Pod>(&self) -> Result<Receiver<T>, Error> {
        Receiver::from_chan(
            self.join(&spec(Fingerprint::of::<T>(), Role::Receiver))?,
            WaitStrategy::Park,
        )
    }

    /// Loom only: attach a new SPSC sender.
    pub fn spsc_sender<T: Pod>(&self) -> Result<Sender<T>, Error> {
        Sender::from_chan(
            self.join(&spec(Fingerprint::of::<T>(), Role::Sender))?,
            WaitStrategy::Park,
        )
    }
}

/// The sending end of an SPSC channel.
///
/// `Send` but not `Sync`: one thread sends at a time. Dropping it disconnects the channel:
/// the receiver drains what was sent, then gets `Disconnected`, until another sender opens
/// the channel (its place is free again).
pub struct Sender<T: Pod> {
    ring: ring::Producer,
    slots: Slots,
    wait: WaitStrategy,
    chan: Chan,
    _payload: PhantomData<T>,
}

impl<T: Pod> Drop for Sender<T> {
    fn drop(&mut self) {
        // The exact `tail` for `len` and `shmchan stat`, before the channel detaches (the
        // sends store it only every `CHECKPOINT` messages). Not a forked child's copy.
        if !self.chan.forked() {
            self.ring.store_tail(self.chan.header());
        }
    }
}

/// The receiving end of an SPSC channel.
///
/// `Send` but not `Sync`: one thread receives at a time. Dropping it disconnects the channel:
/// the sender's calls return `Disconnected` until another receiver opens the channel, which
/// receives what is still in the ring (and a message this receiver's process was killed
/// holding, again: at least once for that one).
pub struct Receiver<T: Pod> {
    ring: ring::Consumer,
    slots: Slots,
    wait: WaitStrategy,
    chan: Chan,
    _payload: PhantomData<T>,
}

impl<T: Pod> Sender<T> {
    /// Create the channel `name` (exclusively) and attach as its sender.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidOptions`], [`Error::AlreadyExists`] if the name
    /// is taken (a live channel there keeps working), [`Error::Io`] if the system refuses (for
    /// example no room left to reserve the memory).
    ///
    /// ```
    /// use shmchan::{spsc, Backend, Options};
    /// # let name = format!("doc-sender-create-{}", std::process::id());
    /// let tx = spsc::Sender::<[u8; 16]>::create(&name, &Options::new().backend(Backend::SysV))?;
    /// assert_eq!(tx.capacity(), Options::DEFAULT_CAPACITY);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &Options) -> Result<Self, Error> {
        Self::from_chan(
            Chan::create(name, opts, &spec(payload::<T>(opts)?, Role::Sender))?,
            opts.wait,
        )
    }

    /// Open the existing channel `name` and attach as its sender.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::NotReady`], [`Error::Incompatible`] (another payload
    /// type, an MPMC channel, a corrupt header), [`Error::EndpointTaken`] if it already has a
    /// sender, [`Error::Closed`], [`Error::Io`].
    ///
    /// ```
    /// use shmchan::{spsc, Options};
    /// # let name = format!("doc-sender-open-{}", std::process::id());
    /// let rx = spsc::Receiver::<u64>::create(&name, &Options::new())?;
    /// let tx = spsc::Sender::<u64>::open(&name, &Options::new())?;
    /// tx.send(1)?;
    /// assert_eq!(rx.recv()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        Self::from_chan(
            Chan::open(name, opts, &spec(payload::<T>(opts)?, Role::Sender))?,
            opts.wait,
        )
    }

    fn from_chan(chan: Chan, wait: WaitStrategy) -> Result<Self, Error> {
        let slots = Slots::new(chan.region(), &chan.geo);
        let ring = ring::Producer::new(chan.header(), &slots, chan.geo.capacity)
            .map_err(|_| corrupt(&chan))?;
        Ok(Sender {
            ring,
            slots,
            wait,
            chan,
            _payload: PhantomData,
        })
    }

    /// Loom only: this sender's process is killed in the middle of sending `value`, after
    /// the message is published and before the shared `tail` is moved.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_die_mid_send(self, value: T) {
        // SAFETY: as in `poll`.
        let _ = unsafe {
            self.ring
                .push_and_die_before_tail(self.chan.header(), &self.slots, value)
        };
        self.chan.loom_die(false);
        std::mem::forget(self);
    }

    /// Loom only: keep the region, to attach a new sender after this one is gone.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_reopener(&self) -> crate::chan::LoomReopen {
        self.chan.loom_reopener()
    }

    /// One attempt: `Ready` when sent or disconnected, `Pending` when full.
    #[inline(always)]
    fn poll(&self, value: T, probe: bool) -> Poll<Result<(), T>> {
        handle::poll_send(&self.chan, value, probe, |_| self.push(value))
    }

    /// Push one value into the ring, with the checkpoint of a single message: the ring's own
    /// test of the new position, out of line (a separate test of the position before and
    /// after the call cost 4 instructions a message, `.ci/instructions spsc_8B`). For
    /// [`poll`](Self::poll) and `send`'s fast path.
    #[inline(always)]
    fn push(&self, value: T) -> Result<(), crate::ring::spsc::Error> {
        // SAFETY: this handle is the channel's only sender (the endpoint table admits one),
        // and `T` is the payload type the geometry was validated for.
        unsafe {
            self.ring.push(self.chan.header(), &self.slots, value, || {
                self.chan.checkpoint()
            })
        }
    }

    /// Send without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if the ring is full, [`TrySendError::Disconnected`] if the
    /// receiver is gone (dropped, or its process died), in both cases with the value.
    ///
    /// ```
    /// use shmchan::{spsc, TrySendError};
    /// let (tx, _rx) = spsc::channel::<u8>(1)?;
    /// tx.try_send(1)?;
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        if const { size_of::<T>() > LARGE } {
            return self.try_send_from(&value).map_err(|e| e.with(value));
        }
        handle::try_send(&self.chan, value, |v, probe| self.poll(v, probe))
    }

    /// Send, waiting for room as long as it takes.
    ///
    /// # Errors
    /// [`SendError`] with the value if the receiver is gone.
    ///
    /// ```
    /// let (tx, rx) = shmchan::spsc::channel::<u64>(2)?;
    /// let t = std::thread::spawn(move || for i in 0..10 { tx.send(i).unwrap() });
    /// for i in 0..10 { assert_eq!(rx.recv()?, i); }
    /// t.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline(always)]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if const { size_of::<T>() > LARGE } {
            return self.send_from(&value, None).map_err(|_| SendError(value));
        }
        // The fast path: not a forked child's copy, no receiver asleep and none gone since we
        // last looked (one load and one compare of the data doorbell's state word: the two
        // checks `send_deadline` makes one by one, 3 instructions a message more), then the
        // push. Anything else, a full ring included, takes the whole path, which checks again.
        if !self.chan.forked() && self.chan.send_clear() && self.push(value).is_ok() {
            return Ok(());
        }
        self.send_slow(value)
    }

    /// The rest of [`send`](Self::send), out of line.
    #[inline(never)]
    fn send_slow(&self, value: T) -> Result<(), SendError<T>> {
        self.send_deadline(value, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// Send, waiting for room at most `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] if the ring stayed full, [`SendTimeoutError::Disconnected`]
    /// if the receiver is gone, with the value.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmchan::{spsc, SendTimeoutError};
    /// let (tx, _rx) = spsc::channel::<u8>(1)?;
    /// tx.send(1)?;
    /// let r = tx.send_timeout(2, Duration::from_millis(10));
    /// assert_eq!(r, Err(SendTimeoutError::Timeout(2)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        if const { size_of::<T>() > LARGE } {
            let deadline = crate::chan::deadline_after(timeout);
            return self.send_from(&value, deadline).map_err(|e| e.with(value));
        }
        self.send_deadline(value, crate::chan::deadline_after(timeout))
    }

    /// One attempt at sending `*value` (payloads larger than [`LARGE`]: by reference, copied
    /// once, into the slot).
    #[inline(always)]
    fn poll_from(&self, value: &T, probe: bool) -> Poll<Result<(), ()>> {
        handle::poll_send(&self.chan, (), probe, |_| {
            // SAFETY: as in `poll`.
            unsafe { self.ring.push_from(self.chan.header(), &self.slots, value) }
        })
    }

    /// `send`/`send_timeout` of a large payload, by reference; the caller hands its value
    /// back with the error.
    #[inline(never)]
    fn send_from(&self, value: &T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<()>> {
        let before = self.ring.position();
        let r = handle::send_deadline(&self.chan, &self.wait, (), deadline, |(), p| {
            self.poll_from(value, p)
        });
        self.checkpoint(before);
        r
    }

    /// `try_send` of a large payload, by reference.
    #[inline(never)]
    fn try_send_from(&self, value: &T) -> Result<(), TrySendError<()>> {
        let before = self.ring.position();
        let r = handle::try_send(&self.chan, (), |(), p| self.poll_from(value, p));
        self.checkpoint(before);
        r
    }

    /// After a batch, a loan or a large payload's send from position `before`: if the ring's
    /// position passed a checkpoint, probe the receiver if a probe is due (see
    /// [`Chan::checkpoint`]). A single message's send checks in [`poll`](Self::poll) instead,
    /// where its test merges with the ring's own.
    #[inline(always)]
    fn checkpoint(&self, before: u64) {
        if crate::ring::passes_checkpoint(before, self.ring.position()) {
            self.chan.checkpoint();
        }
    }

    #[inline]
    fn send_deadline(
        &self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        handle::send_deadline(&self.chan, &self.wait, value, deadline, |v, p| {
            self.poll(v, p)
        })
    }

    /// One attempt at sending a prefix of `values`: `Ready` with how many were sent, or
    /// disconnected; `Pending` when full.
    #[inline]
    fn poll_slice(&self, values: &[T], probe: bool) -> Poll<Result<usize, ()>> {
        handle::poll_send(&self.chan, (), probe, |_| {
            // SAFETY: as in `poll`.
            unsafe {
                self.ring
                    .push_slice(self.chan.header(), &self.slots, values)
            }
        })
    }

    /// Send as many of `values` as there is room for now, in order, without waiting, and
    /// return how many were sent (a prefix of `values`). The batch is published at once: the
    /// ring's position is stored and the receiver woken once, not once per message, which is
    /// what makes batches cheaper per message than [`try_send`](Self::try_send) in a loop.
    ///
    /// An empty `values` sends nothing and returns `Ok(0)`.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if the ring is full (nothing was sent),
    /// [`TrySendError::Disconnected`] if the receiver is gone.
    ///
    /// ```
    /// use shmchan::{spsc, TrySendError};
    /// let (tx, rx) = spsc::channel::<u32>(4)?;
    /// assert_eq!(tx.try_send_slice(&[1, 2, 3, 4, 5, 6]), Ok(4)); // room for 4
    /// assert_eq!(tx.try_send_slice(&[5, 6]), Err(TrySendError::Full(())));
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send_slice(&self, values: &[T]) -> Result<usize, TrySendError<()>> {
        if values.is_empty() {
            return Ok(0);
        }
        let before = self.ring.position();
        let r = handle::try_send(&self.chan, (), |(), probe| self.poll_slice(values, probe));
        self.checkpoint(before);
        r
    }

    /// Send all of `values` in order, waiting for room as long as it takes. Each time there is
    /// room, as many as fit are published at once (see [`try_send_slice`](Self::try_send_slice)).
    ///
    /// # Errors
    /// [`SendError`]`(n)` if the receiver is gone: `values[..n]` were sent before it left,
    /// `values[n..]` were not.
    ///
    /// ```
    /// let (tx, rx) = shmchan::spsc::channel::<u64>(8)?;
    /// let data: Vec<u64> = (0..100).collect();
    /// let t = std::thread::spawn(move || tx.send_slice(&data).unwrap());
    /// let mut got = Vec::new();
    /// let mut buf = [0u64; 16];
    /// while let Ok(n) = rx.recv_slice(&mut buf) {
    ///     got.extend_from_slice(&buf[..n]);
    /// }
    /// t.join().unwrap();
    /// assert_eq!(got, (0..100).collect::<Vec<u64>>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_slice(&self, values: &[T]) -> Result<(), SendError<usize>> {
        let mut sent = 0;
        while sent < values.len() {
            let rest = &values[sent..];
            let before = self.ring.position();
            let r = handle::send_deadline(&self.chan, &self.wait, (), None, |(), probe| {
                self.poll_slice(rest, probe)
            });
            self.checkpoint(before);
            match r {
                Ok(n) => sent += n,
                Err(_) => return Err(SendError(sent)),
            }
        }
        Ok(())
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
use shmchan::{spsc, Options, WaitForPeerError};
# let name = format!("doc-spsc-wait-{}", std::process::id());
let tx = spsc::Sender::<u64>::create(&name, &Options::new())?;
let wait = Duration::from_millis(10);
assert_eq!(tx.wait_for_peer(wait), Err(WaitForPeerError::Timeout));
let rx = spsc::Receiver::<u64>::open(&name, &Options::new())?; // usually another process
tx.wait_for_peer(wait)?;
assert!(tx.is_connected());
drop(rx);
assert!(!tx.is_connected());
assert_eq!(tx.wait_for_peer(wait), Err(WaitForPeerError::Timeout)); // waits for the next one
let rx = spsc::Receiver::<u64>::open(&name, &Options::new())?; // a receiver restarted
tx.wait_for_peer(wait)?;
tx.send(7)?;
assert_eq!(rx.recv()?, 7);
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

impl<T: Pod> Receiver<T> {
    /// Create the channel `name` (exclusively) and attach as its receiver.
    ///
    /// # Errors
    /// As [`Sender::create`].
    ///
    /// ```
    /// use shmchan::{spsc, Options, TryRecvError};
    /// # let name = format!("doc-receiver-create-{}", std::process::id());
    /// let rx = spsc::Receiver::<u32>::create(&name, &Options::new().capacity(8))?;
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty)); // no sender yet: just empty
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &Options) -> Result<Self, Error> {
        Self::from_chan(
            Chan::create(name, opts, &spec(payload::<T>(opts)?, Role::Receiver))?,
            opts.wait,
        )
    }

    /// Open the existing channel `name` and attach as its receiver.
    ///
    /// # Errors
    /// As [`Sender::open`]; [`Error::EndpointTaken`] if it already has a receiver.
    ///
    /// ```
    /// use shmchan::{spsc, Options};
    /// # let name = format!("doc-receiver-open-{}", std::process::id());
    /// let tx = spsc::Sender::<u64>::create(&name, &Options::new())?;
    /// tx.send(5)?; // sent before the receiver exists: kept in the ring
    /// let rx = spsc::Receiver::<u64>::open(&name, &Options::new())?;
    /// assert_eq!(rx.recv()?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        Self::from_chan(
            Chan::open(name, opts, &spec(payload::<T>(opts)?, Role::Receiver))?,
            opts.wait,
        )
    }

    fn from_chan(chan: Chan, wait: WaitStrategy) -> Result<Self, Error> {
        let ring =
            ring::Consumer::new(chan.header(), chan.geo.capacity).map_err(|_| corrupt(&chan))?;
        Ok(Receiver {
            ring,
            slots: Slots::new(chan.region(), &chan.geo),
            wait,
            chan,
            _payload: PhantomData,
        })
    }

    /// The message at our position, if one is published (and this is not a forked child's
    /// copy of the handle): all of a receive that finds one, inlined into the caller, with the
    /// value in registers. Everything else (an empty ring, a disconnect, a fork) takes the
    /// out-of-line path, which tries again; so does a payload larger than [`LARGE`], which is
    /// copied out by the race-free copy. When the closure-built path was inlined instead,
    /// the compiler sometimes left the attempt a call and passed its result through the stack
    /// (a 16-byte load of two 8-byte stores, which store forwarding cannot serve): the stream
    /// between two processes then ran at 17-22 ns a message instead of 5-10
    /// (`cargo bench --bench throughput -- 'stream/paired_spsc_8B$'`).
    #[inline(always)]
    fn take_now(&self) -> Option<T> {
        if const { size_of::<T>() > LARGE } {
            return None; // copied out of the slot by the race-free copy, out of line
        }
        if self.chan.forked() {
            return None;
        }
        // SAFETY: as in `poll`.
        unsafe { self.ring.pop(self.chan.header(), &self.slots) }.ok()
    }

    /// One attempt: `Ready` with a value or a disconnect, `Pending` when empty.
    #[inline(always)]
    fn poll(&self, probe: bool) -> Poll<Result<T, ()>> {
        handle::poll_recv(&self.chan, probe, |_| {
            // SAFETY: this handle is the channel's only receiver (the endpoint table admits
            // one), and `T` is the payload type the geometry was validated for.
            unsafe { self.ring.pop(self.chan.header(), &self.slots) }
        })
    }

    /// Receive without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if the ring is empty (including before any sender attached),
    /// [`TryRecvError::Disconnected`] if it is empty and the sender is gone.
    ///
    /// ```
    /// use shmchan::{spsc, TryRecvError};
    /// let (tx, rx) = spsc::channel::<u8>(4)?;
    /// tx.send(1)?;
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        match self.take_now() {
            Some(v) => Ok(v),
            None => self.try_recv_slow(),
        }
    }

    /// `try_recv` when [`take_now`](Self::take_now) found nothing (or of a large payload).
    #[inline(never)]
    fn try_recv_slow(&self) -> Result<T, TryRecvError> {
        if const { size_of::<T>() > LARGE } {
            let mut out = MaybeUninit::uninit();
            self.try_recv_into(&mut out)?;
            // SAFETY: `try_recv_into` succeeded, so it filled `out` with a copy of a `T`.
            return Ok(unsafe { out.assume_init() });
        }
        handle::try_recv(&self.chan, |probe| self.poll(probe))
    }

    /// Receive, waiting as long as it takes.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and the sender is gone.
    ///
    /// ```
    /// let (tx, rx) = shmchan::spsc::channel::<u64>(8)?;
    /// tx.send(3)?;
    /// drop(tx);
    /// assert_eq!(rx.recv(), Ok(3));
    /// assert!(rx.recv().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline(always)]
    pub fn recv(&self) -> Result<T, RecvError> {
        match self.take_now() {
            Some(v) => Ok(v),
            None => self.recv_deadline(None).map_err(|_| RecvError),
        }
    }

    /// Receive, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if nothing arrived, [`RecvTimeoutError::Disconnected`] if
    /// the ring is empty and the sender is gone.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmchan::RecvTimeoutError;
    /// let (_tx, rx) = shmchan::spsc::channel::<u64>(8)?;
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline(always)]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        // Before the clock is read for the deadline: a message that is there costs none.
        match self.take_now() {
            Some(v) => Ok(v),
            None => self.recv_deadline(crate::chan::deadline_after(timeout)),
        }
    }

    /// A receive that [`take_now`](Self::take_now) could not finish (or of a large payload).
    #[inline(never)]
    fn recv_deadline(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        if const { size_of::<T>() > LARGE } {
            let mut out = MaybeUninit::uninit();
            self.recv_into(&mut out, deadline)?;
            // SAFETY: `recv_into` succeeded, so it filled `out` with a copy of a `T`.
            return Ok(unsafe { out.assume_init() });
        }
        handle::recv_deadline(&self.chan, &self.wait, deadline, |probe| self.poll(probe))
    }

    /// One attempt at receiving into `out` (payloads larger than [`LARGE`]: copied once,
    /// out of the slot, into the caller's memory).
    #[inline(always)]
    fn poll_into(&self, out: &mut MaybeUninit<T>, probe: bool) -> Poll<Result<(), ()>> {
        handle::poll_recv(&self.chan, probe, |_| {
            // SAFETY: as in `poll`.
            unsafe { self.ring.pop_into(self.chan.header(), &self.slots, out) }
        })
    }

    /// `recv`/`recv_timeout` of a large payload, into `out` (filled on success only).
    #[inline(never)]
    fn recv_into(
        &self,
        out: &mut MaybeUninit<T>,
        deadline: Option<Instant>,
    ) -> Result<(), RecvTimeoutError> {
        handle::recv_deadline(&self.chan, &self.wait, deadline, |p| self.poll_into(out, p))
    }

    /// `try_recv` of a large payload, into `out` (filled on success only).
    #[inline(never)]
    fn try_recv_into(&self, out: &mut MaybeUninit<T>) -> Result<(), TryRecvError> {
        handle::try_recv(&self.chan, |p| self.poll_into(out, p))
    }

    /// One attempt at filling a prefix of `buf`: `Ready` with how many, or a disconnect;
    /// `Pending` when empty.
    #[inline]
    fn poll_slice(&self, buf: &mut [T], probe: bool) -> Poll<Result<usize, ()>> {
        handle::poll_recv(&self.chan, probe, |_| {
            // SAFETY: as in `poll`.
            unsafe { self.ring.pop_slice(self.chan.header(), &self.slots, buf) }
        })
    }

    /// Receive the messages available now, at most `buf.len()`, into the start of `buf`,
    /// without waiting; returns how many. Their slots are handed back to the sender at once
    /// (one store and one wake-up check for the batch).
    ///
    /// An empty `buf` receives nothing and returns `Ok(0)`.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if there is nothing to receive, [`TryRecvError::Disconnected`]
    /// if there is nothing and the sender is gone.
    ///
    /// ```
    /// use shmchan::{spsc, TryRecvError};
    /// let (tx, rx) = spsc::channel::<u8>(8)?;
    /// tx.send_slice(b"hello")?;
    /// let mut buf = [0u8; 4];
    /// assert_eq!(rx.try_recv_slice(&mut buf), Ok(4));
    /// assert_eq!(&buf, b"hell");
    /// assert_eq!(rx.try_recv_slice(&mut buf), Ok(1));
    /// assert_eq!(buf[0], b'o');
    /// assert_eq!(rx.try_recv_slice(&mut buf), Err(TryRecvError::Empty));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_slice(&self, buf: &mut [T]) -> Result<usize, TryRecvError> {
        if buf.is_empty() {
            return Ok(0);
        }
        handle::try_recv(&self.chan, |probe| self.poll_slice(buf, probe))
    }

    /// Wait until at least one message is there, then receive as many as are available, at
    /// most `buf.len()`, into the start of `buf`; returns how many (at least 1 unless `buf` is
    /// empty).
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and the sender is gone.
    ///
    /// ```
    /// let (tx, rx) = shmchan::spsc::channel::<u32>(8)?;
    /// let t = std::thread::spawn(move || tx.send_slice(&[7, 8, 9]).unwrap());
    /// let mut buf = [0; 8];
    /// let mut got = Vec::new();
    /// while let Ok(n) = rx.recv_slice(&mut buf) {
    ///     got.extend_from_slice(&buf[..n]); // in as many batches as the timing gives
    /// }
    /// t.join().unwrap();
    /// assert_eq!(got, [7, 8, 9]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_slice(&self, buf: &mut [T]) -> Result<usize, RecvError> {
        self.recv_slice_deadline(buf, None).map_err(|_| RecvError)
    }

    /// As [`recv_slice`](Self::recv_slice), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if nothing arrived, [`RecvTimeoutError::Disconnected`] if
    /// the ring is empty and the sender is gone.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmchan::RecvTimeoutError;
    /// let (tx, rx) = shmchan::spsc::channel::<u64>(8)?;
    /// let mut buf = [0; 8];
    /// let wait = Duration::from_millis(5);
    /// assert_eq!(rx.recv_slice_timeout(&mut buf, wait), Err(RecvTimeoutError::Timeout));
    /// tx.send(9)?;
    /// assert_eq!(rx.recv_slice_timeout(&mut buf, wait), Ok(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_slice_timeout(
        &self,
        buf: &mut [T],
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_slice_deadline(buf, crate::chan::deadline_after(timeout))
    }

    fn recv_slice_deadline(
        &self,
        buf: &mut [T],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvTimeoutError> {
        if buf.is_empty() {
            return Ok(0);
        }
        handle::recv_deadline(&self.chan, &self.wait, deadline, |probe| {
            self.poll_slice(buf, probe)
        })
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

    /// Loom only: keep the region, to attach a new receiver after this one is gone.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_reopener(&self) -> crate::chan::LoomReopen {
        self.chan.loom_reopener()
    }

    /// Loom only: this receiver goes to sleep waiting for data (it registers as a sleeper on
    /// the doorbell, as `recv` does before `futex_wait`) and its process is killed there.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_sleep_and_die(self) {
        let _ = self.chan.header().data_bell.prepare();
        self.chan.loom_die(false);
        std::mem::forget(self);
    }

    crate::handle::queries!("sender", spsc);

    crate::handle::wait_for_peer!(
        "sender",
        data_bell,
        r#"
```
use std::time::Duration;
use shmchan::{spsc, Options};
# let name = format!("doc-spsc-rx-wait-{}", std::process::id());
let rx = spsc::Receiver::<u64>::create(&name, &Options::new())?;
assert!(!rx.is_connected());
let tx = spsc::Sender::<u64>::open(&name, &Options::new())?; // usually another process
rx.wait_for_peer(Duration::from_secs(1))?;
assert!(rx.is_connected());
# drop(tx);
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );

    /// A blocking iterator over received messages; it ends when the sender is gone and the
    /// ring is drained.
    ///
    /// ```
    /// let (tx, rx) = shmchan::spsc::channel::<u32>(16)?;
    /// for i in 0..3 { tx.send(i)?; }
    /// drop(tx);
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// An iterator over the messages available now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }
}

crate::handle::debug_impl!(Sender, "spsc::Sender");
crate::handle::debug_impl!(Receiver, "spsc::Receiver");

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Ordering;

    /// A producer killed after publishing slots' stamps and before storing `tail` (or within
    /// a batch): the next producer starts after what it published, whether or not the
    /// consumer has taken it yet (then `head` is ahead of the shared `tail`).
    #[test]
    fn a_new_producer_starts_after_what_a_killed_one_published() {
        for taken in [0usize, 1, 2] {
            let (tx, rx) = channel::<u64>(4).unwrap();
            tx.send(10).unwrap();
            tx.send(11).unwrap();
            // The stores of `tail` never happened.
            tx.chan.header().tail.store(0, Ordering::Relaxed);
            for want in [10, 11].into_iter().take(taken) {
                assert_eq!(rx.try_recv(), Ok(want));
            }
            let next = ring::Producer::new(tx.chan.header(), &tx.slots, 4).unwrap();
            assert_eq!(next.position(), 2, "{taken} taken");
            assert_eq!(tx.chan.header().tail.load(Ordering::Relaxed), 2);
        }
    }

    /// The shared `tail` is stored only every `CHECKPOINT` messages, yet `len` is exact on
    /// both sides, between checkpoints, across them, after batches, loans and receives, and
    /// after the sender left.
    #[test]
    fn len_is_exact_between_the_tail_hints() {
        let (mut tx, rx) = channel::<u64>(256).unwrap();
        let mut sent = 0u64;
        let mut taken = 0u64;
        let check = |tx: &Sender<u64>, rx: &Receiver<u64>, n: u64, what: &str| {
            assert_eq!((tx.len(), rx.len()), (n as usize, n as usize), "{what}");
        };
        for (send, take) in [(5, 0), (60, 3), (1, 0), (100, 90), (0, 73)] {
            for _ in 0..send {
                tx.send(sent).unwrap();
                sent += 1;
            }
            for _ in 0..take {
                assert_eq!(rx.recv(), Ok(taken));
                taken += 1;
            }
            check(
                &tx,
                &rx,
                sent - taken,
                &format!("after {sent} sent, {taken} taken"),
            );
        }
        tx.send_slice(&[sent, sent + 1, sent + 2]).unwrap();
        sent += 3;
        let mut loan = tx.loan().unwrap();
        *loan = sent;
        loan.commit();
        sent += 1;
        check(&tx, &rx, sent - taken, "a batch and a loan");
        drop(tx);
        assert_eq!(rx.len(), (sent - taken) as usize, "after the sender left");
        assert_eq!(
            rx.chan.header().tail.load(Ordering::Relaxed),
            sent,
            "a sender leaving stores the exact tail"
        );
    }
}
