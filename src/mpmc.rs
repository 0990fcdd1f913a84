//! Multi-producer multi-consumer channels: any number of processes attach [`Sender`]s and
//! [`Receiver`]s to one named channel, and each message is delivered to exactly one receiver.
//!
//! Handles are `Clone` and `Sync`: clones share this process's endpoint, so the channel stays
//! connected while any of them lives. A channel takes up to [`Options::max_senders`] senders
//! and [`Options::max_receivers`] receivers attached *at once* (32 each by default; one per
//! `create`/`open`, clones are free); one that leaves or dies frees its place for the next, so
//! a work queue outlives any number of workers.
//!
//! # Cost
//!
//! Every message takes locked instructions (a CAS to claim its slot and one to publish it, the
//! same to take it), so MPMC streams at the rate of in-process MPMC queues, several times below
//! [`spsc`](crate::spsc). Payloads of up to 8 bytes (`u64`, `f64`, small `Pod` structs) take
//! one locked instruction a side on x86-64: a `send` and a `recv` each change the slot's stamp
//! and payload together with one 16-byte CAS (loans and references still claim the slot first).
//! On our 2-core test machine that is 40-47 M `u64`s/s between one producer and one consumer
//! process (against 19-25 M before, and about 230 M/s for SPSC:
//! `cargo bench --bench throughput -- 'mpmc_1x1|spsc_8B$'`). With one producer and one
//! consumer, use SPSC.
//!
//! # Zero-copy
//!
//! [`Sender::loan`] claims a slot to be written in place ([`Loan`], published by
//! [`Loan::commit`], given up when dropped) and [`Receiver::recv_ref`] claims a message to be
//! read in place ([`Ref`], freed when it drops); each is its own claimed slot, so a handle may
//! hold several.
//!
//! # Guarantees when a process dies
//!
//! - A producer killed between claiming a slot and publishing it loses that one message; the
//!   others go on within about 40 ms (the slot is repaired once the producer is found dead),
//!   and a half-written message is never delivered.
//! - A process killed in a `send` or a `recv` of a payload of up to 8 bytes on x86-64 leaves
//!   nothing half done: the message is either in the ring or not, and either taken or not
//!   (each is one 16-byte CAS).
//! - A consumer killed while copying a message out, or while holding it as a [`Ref`], loses
//!   nothing: that message is handed back and delivered again (at least once for it), to the
//!   next consumer that attaches (at once: it sweeps the ring when it attaches) or, if none
//!   does, to a live one when the ring comes round to its slot. No other message is delivered
//!   twice.
//! - A loan dropped without a commit gives its position up at once (nothing of it is
//!   delivered); a producer killed holding one loses that position, as for a `send`.
//! - Receivers see `Disconnected` once every sender is gone (dropped or dead) and the ring is
//!   drained; senders see it once every receiver is gone. Either way, until the next one
//!   attaches: the same handles work again then.
//! - Per-producer order is kept: messages of one sender reach any one receiver in the order
//!   they were sent.
//!
//! ```
//! use shmchan::{mpmc, Options};
//! # let name = format!("doc-mpmc-{}", std::process::id());
//!
//! let tx = mpmc::Sender::<u64>::create(&name, &Options::new().capacity(64))?;
//! let rx = mpmc::Receiver::<u64>::open(&name, &Options::new())?; // usually other processes
//! let tx2 = tx.clone();
//! std::thread::spawn(move || tx2.send(1).unwrap()).join().unwrap();
//! tx.send(2)?;
//! let mut got = [rx.recv()?, rx.recv()?];
//! got.sort();
//! assert_eq!(got, [1, 2]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::Arc;
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
use crate::ring::{LARGE, Slots, mpmc as ring};
use crate::wait::Poll;

/// Senders a channel takes attached at once unless [`Options::max_senders`] says otherwise
/// (32; 2 in loom models, where every entry scanned is a branch point). A sender that leaves
/// frees its place for the next.
pub const MAX_SENDERS: usize = if cfg!(loom) { 2 } else { 32 };
/// Receivers a channel takes attached at once unless [`Options::max_receivers`] says
/// otherwise (32; 2 in loom models).
pub const MAX_RECEIVERS: usize = if cfg!(loom) { 2 } else { 32 };

/// The shape of a channel `create` makes (or `open` expects: the header's geometry decides).
pub(crate) fn spec(fp: Fingerprint, role: Role, opts: &Options) -> Spec {
    Spec {
        kind: Kind::Mpmc,
        role,
        fp,
        max_senders: opts.max_senders,
        max_receivers: opts.max_receivers,
        overflow: (0, 0),
    }
}

/// One attached endpoint, shared by a handle and its clones (and by `untyped::mpmc`'s).
pub(crate) struct Shared {
    pub(crate) ring: ring::Ring,
    pub(crate) slots: Slots,
    pub(crate) wait: WaitStrategy,
    pub(crate) chan: Chan,
}

impl Shared {
    pub(crate) fn new(chan: Chan, wait: WaitStrategy) -> Arc<Shared> {
        let slots = Slots::new(chan.region(), &chan.geo);
        let pairs = slots.pairs();
        // Under loom, only rings of 8-aligned payloads (`u64`) pair: the models written for
        // the two-step protocol use `u32` and `[u32; 2]`, and keep checking it alone (and
        // without the mutex that models the pair: `ring::Slots::cas_pair`).
        #[cfg(loom)]
        let pairs = pairs
            && chan
                .header()
                .id
                .payload_align
                .load(crate::sync::Ordering::Relaxed)
                == 8;
        let ring = ring::Ring::new(chan.geo.capacity, chan.entry(), chan.generation8(), pairs);
        // Hand back what endpoints that left were holding (a consumer killed with a message
        // in hand: it goes to the next consumer now), asking the kernel about the holders.
        ring.sweep(chan.header(), &slots, |o, g| chan.owner_gone(o, g, true));
        Arc::new(Shared {
            ring,
            slots,
            wait,
            chan,
        })
    }
}

/// Create an MPMC channel inside this process (on the heap, no name), like
/// `crossbeam_channel::bounded`. Capacity is rounded up to a power of two.
///
/// # Errors
/// [`Error::InvalidOptions`] if `capacity` is 0 or above [`Options::MAX_CAPACITY`].
///
/// ```
/// let (tx, rx) = shmchan::mpmc::channel::<u32>(16)?;
/// let workers: Vec<_> = (0..2)
///     .map(|_| { let rx = rx.clone(); std::thread::spawn(move || rx.iter().count()) })
///     .collect();
/// for i in 0..100 { tx.send(i)?; }
/// drop((tx, rx));
/// let total: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
/// assert_eq!(total, 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn channel<T: Pod>(capacity: usize) -> Result<(Sender<T>, Receiver<T>), Error> {
    let (a, b) = Chan::heap_pair(
        capacity,
        &spec(Fingerprint::of::<T>(), Role::Sender, &Options::new()),
    )?;
    let wait = WaitStrategy::default();
    Ok((Sender::from_chan(a, wait), Receiver::from_chan(b, wait)))
}

/// Loom only: an in-process channel with `max_senders` and `max_receivers` places.
#[cfg(loom)]
#[doc(hidden)]
pub fn loom_channel<T: Pod>(
    capacity: usize,
    max_senders: usize,
    max_receivers: usize,
) -> Result<(Sender<T>, Receiver<T>), Error> {
    let opts = Options::new()
        .max_senders(max_senders)
        .max_receivers(max_receivers);
    let (a, b) = Chan::heap_pair(capacity, &spec(Fingerprint::of::<T>(), Role::Sender, &opts))?;
    Ok((
        Sender::from_chan(a, WaitStrategy::Park),
        Receiver::from_chan(b, WaitStrategy::Park),
    ))
}

#[cfg(loom)]
impl crate::chan::LoomReopen {
    /// Loom only: attach a new MPMC receiver (a vacant place, or a never-used one).
    pub fn mpmc_receiver<T: Pod>(&self) -> Result<Receiver<T>, Error> {
        let spec = spec(Fingerprint::of::<T>(), Role::Receiver, &Options::new());
        Ok(Receiver::from_chan(self.join(&spec)?, WaitStrategy::Park))
    }
}

/// The sending side of an MPMC channel. `Clone` (clones share this endpoint), `Send` and
/// `Sync`.
pub struct Sender<T: Pod> {
    shared: Arc<Shared>,
    _payload: PhantomData<T>,
}

/// The receiving side of an MPMC channel. `Clone` (clones share this endpoint), `Send` and
/// `Sync`; each message goes to exactly one receiver.
pub struct Receiver<T: Pod> {
    shared: Arc<Shared>,
    _payload: PhantomData<T>,
}

impl<T: Pod> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            shared: self.shared.clone(),
            _payload: PhantomData,
        }
    }
}

impl<T: Pod> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver {
            shared: self.shared.clone(),
            _payload: PhantomData,
        }
    }
}

impl<T: Pod> Sender<T> {
    /// Create the channel `name` (exclusively) and attach as a sender.
    ///
    /// # Errors
    /// As [`spsc::Sender::create`](crate::spsc::Sender::create).
    ///
    /// ```
    /// use shmchan::{mpmc, Options};
    /// # let name = format!("doc-mpmc-create-{}", std::process::id());
    /// let tx = mpmc::Sender::<u64>::create(&name, &Options::new().capacity(8))?;
    /// assert_eq!(tx.capacity(), 8);
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &Options) -> Result<Self, Error> {
        Ok(Self::from_chan(
            Chan::create(name, opts, &spec(payload::<T>(opts)?, Role::Sender, opts))?,
            opts.wait,
        ))
    }

    /// Open the existing channel `name` and attach as one more sender.
    ///
    /// # Errors
    /// As [`spsc::Sender::open`](crate::spsc::Sender::open); [`Error::Incompatible`] if it is
    /// an SPSC channel; [`Error::EndpointTaken`] while [`Options::max_senders`] senders are
    /// attached (and alive).
    ///
    /// ```
    /// use shmchan::{mpmc, Options};
    /// # let name = format!("doc-mpmc-open-{}", std::process::id());
    /// let rx = mpmc::Receiver::<u64>::create(&name, &Options::new())?;
    /// let (a, b) = (mpmc::Sender::<u64>::open(&name, &Options::new())?,
    ///               mpmc::Sender::<u64>::open(&name, &Options::new())?);
    /// a.send(1)?;
    /// b.send(2)?;
    /// assert_eq!(rx.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        Ok(Self::from_chan(
            Chan::open(name, opts, &spec(payload::<T>(opts)?, Role::Sender, opts))?,
            opts.wait,
        ))
    }

    fn from_chan(chan: Chan, wait: WaitStrategy) -> Self {
        Sender {
            shared: Shared::new(chan, wait),
            _payload: PhantomData,
        }
    }

    #[inline(always)]
    fn poll(&self, value: T, probe: bool) -> Poll<Result<(), T>> {
        let s = &*self.shared;
        handle::poll_send(&s.chan, value, probe, |probe| {
            // SAFETY: `T` is the payload type the geometry was validated for, and the ring's
            // owner index is the endpoint entry this process holds.
            unsafe {
                s.ring.push(s.chan.header(), &s.slots, value, |o, g| {
                    s.chan.owner_gone(o, g, probe)
                })
            }
        })
    }

    /// For the loom repair model: mark this sender's endpoint as dead while it keeps running,
    /// so receivers may repair a slot it is still writing (the race of a repair with a late
    /// publish).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_declare_dead(&self) {
        let chan = &self.shared.chan;
        crate::endpoint::declare_dead(chan.header(), &chan.header().endpoints[chan.entry()]);
    }

    /// Send without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if the ring is full, [`TrySendError::Disconnected`] if every
    /// receiver is gone, with the value.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        if const { size_of::<T>() > LARGE } {
            return self.try_send_from(&value).map_err(|e| e.with(value));
        }
        let r = handle::try_send(&self.shared.chan, value, |v, probe| self.poll(v, probe));
        self.checkpoint();
        r
    }

    /// Send, waiting for room as long as it takes.
    ///
    /// # Errors
    /// [`SendError`] with the value if every receiver is gone.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if const { size_of::<T>() > LARGE } {
            return self.send_from(&value, None).map_err(|_| SendError(value));
        }
        let r = self
            .send_deadline(value, None)
            .map_err(|e| SendError(e.into_inner()));
        self.checkpoint();
        r
    }

    /// Send, waiting for room at most `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Disconnected`], with the value.
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        if const { size_of::<T>() > LARGE } {
            let deadline = crate::chan::deadline_after(timeout);
            return self.send_from(&value, deadline).map_err(|e| e.with(value));
        }
        let r = self.send_deadline(value, crate::chan::deadline_after(timeout));
        self.checkpoint();
        r
    }

    /// One attempt at sending `*value` (payloads larger than [`LARGE`]: by reference, copied
    /// once, into the slot).
    #[inline(always)]
    fn poll_from(&self, value: &T, probe: bool) -> Poll<Result<(), ()>> {
        let s = &*self.shared;
        handle::poll_send(&s.chan, (), probe, |probe| {
            // SAFETY: as in `poll`.
            unsafe {
                s.ring.push_from(s.chan.header(), &s.slots, value, |o, g| {
                    s.chan.owner_gone(o, g, probe)
                })
            }
        })
    }

    /// `send`/`send_timeout` of a large payload, by reference; the caller hands its value
    /// back with the error.
    #[inline(never)]
    fn send_from(&self, value: &T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<()>> {
        let s = &*self.shared;
        let r = handle::send_deadline(&s.chan, &s.wait, (), deadline, |(), p| {
            self.poll_from(value, p)
        });
        self.checkpoint();
        r
    }

    /// `try_send` of a large payload, by reference.
    #[inline(never)]
    fn try_send_from(&self, value: &T) -> Result<(), TrySendError<()>> {
        let r = handle::try_send(&self.shared.chan, (), |(), p| self.poll_from(value, p));
        self.checkpoint();
        r
    }

    /// After a send: every [`CHECKPOINT`](crate::ring::CHECKPOINT) positions of the ring (as
    /// its shared `tail` hint says, which the push just wrote), probe the receivers if a probe
    /// is due (see `Chan::checkpoint`). Outside the inlined send closure.
    #[inline(always)]
    fn checkpoint(&self) {
        let chan = &self.shared.chan;
        // Relaxed: a hint for pacing only.
        let tail = chan.header().tail.load(crate::sync::Ordering::Relaxed);
        if tail % crate::ring::CHECKPOINT == 0 {
            chan.checkpoint();
        }
    }

    #[inline]
    fn send_deadline(
        &self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        let s = &*self.shared;
        handle::send_deadline(&s.chan, &s.wait, value, deadline, |v, p| self.poll(v, p))
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
use shmchan::{mpmc, Options};
# let name = format!("doc-mpmc-wait-{}", std::process::id());
let tx = mpmc::Sender::<u64>::create(&name, &Options::new())?;
let rx = mpmc::Receiver::<u64>::open(&name, &Options::new())?; // usually another process
tx.wait_for_peer(Duration::from_secs(1))?;
assert!(tx.is_connected());
# drop(rx);
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );
}

impl<T: Pod> Receiver<T> {
    /// Create the channel `name` (exclusively) and attach as a receiver.
    ///
    /// # Errors
    /// As [`spsc::Sender::create`](crate::spsc::Sender::create).
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &Options) -> Result<Self, Error> {
        Ok(Self::from_chan(
            Chan::create(name, opts, &spec(payload::<T>(opts)?, Role::Receiver, opts))?,
            opts.wait,
        ))
    }

    /// Open the existing channel `name` and attach as one more receiver.
    ///
    /// # Errors
    /// As [`Sender::open`]; [`Error::EndpointTaken`] while [`Options::max_receivers`]
    /// receivers are attached (and alive).
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        Ok(Self::from_chan(
            Chan::open(name, opts, &spec(payload::<T>(opts)?, Role::Receiver, opts))?,
            opts.wait,
        ))
    }

    fn from_chan(chan: Chan, wait: WaitStrategy) -> Self {
        Receiver {
            shared: Shared::new(chan, wait),
            _payload: PhantomData,
        }
    }

    /// A message, if one is ready now (and this is not a forked child's copy of the handle):
    /// all of a receive that finds one, inlined into the caller with the value in registers;
    /// anything else (and a payload larger than [`LARGE`]) goes out of line and tries again
    /// (as `spsc::Receiver`'s).
    #[inline(always)]
    fn take_now(&self) -> Option<T> {
        if const { size_of::<T>() > LARGE } {
            return None; // copied out of the slot by the race-free copy, out of line
        }
        let s = &*self.shared;
        if s.chan.forked() {
            return None;
        }
        // SAFETY: as in `Sender::poll`.
        unsafe {
            s.ring.pop(s.chan.header(), &s.slots, false, |o, g| {
                s.chan.owner_gone(o, g, false)
            })
        }
        .ok()
    }

    #[inline(always)]
    fn poll(&self, probe: bool) -> Poll<Result<T, ()>> {
        let s = &*self.shared;
        handle::poll_recv_outlined(&s.chan, probe, |probe| {
            // SAFETY: as in `Sender::poll`.
            unsafe {
                s.ring.pop(s.chan.header(), &s.slots, !probe, |o, g| {
                    s.chan.owner_gone(o, g, probe)
                })
            }
        })
    }

    /// Receive without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if nothing is ready, [`TryRecvError::Disconnected`] if the ring
    /// is empty and every sender is gone.
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
        handle::try_recv(&self.shared.chan, |probe| self.poll(probe))
    }

    /// Receive, waiting as long as it takes.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and every sender is gone.
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
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
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
        let s = &*self.shared;
        handle::recv_deadline(&s.chan, &s.wait, deadline, |probe| self.poll(probe))
    }

    /// One attempt at receiving into `out` (payloads larger than [`LARGE`]: copied once,
    /// out of the slot, into the caller's memory).
    #[inline(always)]
    fn poll_into(&self, out: &mut MaybeUninit<T>, probe: bool) -> Poll<Result<(), ()>> {
        let s = &*self.shared;
        handle::poll_recv(&s.chan, probe, |probe| {
            // SAFETY: as in `poll`.
            unsafe {
                s.ring
                    .pop_into(s.chan.header(), &s.slots, out, !probe, |o, g| {
                        s.chan.owner_gone(o, g, probe)
                    })
            }
        })
    }

    /// `recv`/`recv_timeout` of a large payload, into `out` (filled on success only).
    #[inline(never)]
    fn recv_into(
        &self,
        out: &mut MaybeUninit<T>,
        deadline: Option<Instant>,
    ) -> Result<(), RecvTimeoutError> {
        let s = &*self.shared;
        handle::recv_deadline(&s.chan, &s.wait, deadline, |p| self.poll_into(out, p))
    }

    /// `try_recv` of a large payload, into `out` (filled on success only).
    #[inline(never)]
    fn try_recv_into(&self, out: &mut MaybeUninit<T>) -> Result<(), TryRecvError> {
        handle::try_recv(&self.shared.chan, |p| self.poll_into(out, p))
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
use shmchan::{mpmc, Options, WaitForPeerError};
# let name = format!("doc-mpmc-rx-wait-{}", std::process::id());
let rx = mpmc::Receiver::<u64>::create(&name, &Options::new())?;
let wait = Duration::from_millis(10);
assert_eq!(rx.wait_for_peer(wait), Err(WaitForPeerError::Timeout));
# Ok::<(), Box<dyn std::error::Error>>(())
```"#
    );

    /// Loom only: keep the region, to attach new receivers later.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_reopener(&self) -> crate::chan::LoomReopen {
        self.shared.chan.loom_reopener()
    }

    /// Loom only: this receiver's process is killed (and a peer has marked it dead); whatever
    /// it holds stays held.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_die(self) {
        self.shared.chan.loom_die(true);
        std::mem::forget(self);
    }

    /// A blocking iterator; it ends when every sender is gone and the ring is drained.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// An iterator over the messages ready now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }
}

crate::handle::debug_impl!(Sender, "mpmc::Sender");
crate::handle::debug_impl!(Receiver, "mpmc::Receiver");

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::mpmc::{FULL, READING, WRITING, stamp};
    use crate::sync::Ordering;

    /// An entry word of generation `generation` in `state` (token 0).
    fn entry_word(generation: u64, state: u64) -> u64 {
        (generation << 34) | state
    }

    /// Make place `o` look like one whose occupant of generation 9 died and was reaped, holding
    /// `pos`'s slot in `state`, with the hint of its role past `pos`.
    fn plant_dead_owner(s: &Shared, o: usize, pos: u64, state: u64) {
        let hdr = s.chan.header();
        hdr.endpoints[o].store(entry_word(9, crate::endpoint::DEAD), Ordering::Relaxed);
        s.slots
            .stamp(pos)
            .store(stamp(pos, o, 9, state), Ordering::Relaxed);
        hdr.tail.store(pos + 1, Ordering::Relaxed);
        if state == READING {
            hdr.head.store(pos + 1, Ordering::Relaxed);
        }
    }

    /// A producer died between claiming position 0 and publishing it: the consumer repairs
    /// the slot, skips that message (never delivering its half-written payload) and receives
    /// the next one.
    #[test]
    fn slot_of_a_dead_writer_is_repaired_and_skipped() {
        let (tx, rx) = channel::<u64>(4).unwrap();
        plant_dead_owner(&tx.shared, 5, 0, WRITING);
        assert_eq!(
            rx.try_recv(),
            Err(TryRecvError::Empty),
            "the lost message is not delivered"
        );
        tx.send(7).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(7));
        // The ring keeps working across laps.
        for i in 0..10 {
            tx.send(i).unwrap();
            assert_eq!(rx.recv(), Ok(i));
        }
    }

    /// A consumer died while holding position 0 (copying it out, or a `Ref`): the message is
    /// not lost. The producer that laps around to its slot hands it back (the ring is full
    /// until a consumer takes it), and the next receive delivers it first.
    #[test]
    fn message_of_a_dead_reader_is_delivered_again() {
        let (tx, rx) = channel::<u64>(4).unwrap();
        tx.send(99).unwrap();
        plant_dead_owner(&tx.shared, MAX_SENDERS + 7, 0, READING);
        for i in 1..=3 {
            tx.try_send(i).unwrap_or_else(|e| panic!("send {i}: {e}"));
        }
        assert!(
            tx.try_send(4).unwrap_err().is_full(),
            "the dead consumer's message still takes its slot"
        );
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [99, 1, 2, 3]);
        tx.try_send(4).unwrap();
        assert_eq!(rx.try_recv(), Ok(4));
    }

    /// A new endpoint hands back at once what a dead consumer held (its sweep), so the next
    /// consumer gets it without waiting for the ring to come round.
    #[test]
    fn a_new_endpoint_sweeps_dead_readers_messages_back() {
        let (tx, rx) = channel::<u64>(8).unwrap();
        tx.send(42).unwrap();
        plant_dead_owner(&tx.shared, MAX_SENDERS + 7, 0, READING);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "hint past it");
        let s = &*tx.shared;
        s.ring.sweep(s.chan.header(), &s.slots, |o, g| {
            s.chan.owner_gone(o, g, true)
        });
        assert_eq!(rx.try_recv(), Ok(42));
    }

    /// Places are reused: a slot stamped by an earlier occupant of a place (an older
    /// generation) is repaired even though the place is attached again, while one stamped
    /// by the current occupant is waited for.
    #[test]
    fn generations_tell_a_places_occupants_apart() {
        let (tx, rx) = channel::<u64>(4).unwrap();
        let s = &*tx.shared;
        let hdr = s.chan.header();
        let o = 5;
        hdr.endpoints[o].store(entry_word(10, crate::endpoint::ATTACHED), Ordering::Relaxed);
        // The current occupant (generation 10) is writing position 0: wait for it.
        s.slots
            .stamp(0)
            .store(stamp(0, o, 10, WRITING), Ordering::Relaxed);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(
            s.slots.stamp(0).load(Ordering::Relaxed),
            stamp(0, o, 10, WRITING)
        );
        // The previous occupant (generation 9) left it WRITING: repaired and skipped.
        s.slots
            .stamp(0)
            .store(stamp(0, o, 9, WRITING), Ordering::Relaxed);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(3).unwrap();
        assert_eq!(rx.try_recv(), Ok(3));
    }

    /// A message handed back by a repair, whose slot the `head` hint left behind (a racing
    /// hint store undid the repair's move back): the consumer that comes round to the slot a
    /// lap later takes it, rather than taking the stamp for an impossible one.
    #[test]
    fn a_handed_back_message_behind_the_hint_is_taken_a_lap_later() {
        let (tx, rx) = channel::<u64>(4).unwrap();
        tx.send(5).unwrap();
        let s = &*tx.shared;
        let hdr = s.chan.header();
        // Position 0 taken, its consumer died, the message handed back (FULL again), and the
        // hints a lap on.
        s.slots
            .stamp(0)
            .store(stamp(0, 0, 0, FULL), Ordering::Relaxed);
        hdr.head.store(4, Ordering::Relaxed);
        hdr.tail.store(4, Ordering::Relaxed);
        assert_eq!(rx.try_recv(), Ok(5));
        tx.send(6).unwrap();
        assert_eq!(rx.try_recv(), Ok(6), "the ring goes on");
    }

    /// A stamp that fits no state of the protocol makes the channel report itself broken
    /// (disconnected), not loop or read out of bounds.
    #[test]
    fn impossible_stamps_disconnect() {
        let (tx, rx) = channel::<u64>(4).unwrap();
        // Position 0's slot claiming to hold position -1: no lap of the protocol does that.
        tx.shared
            .slots
            .stamp(0)
            .store(stamp(u64::MAX, 3, 0, 2), Ordering::Relaxed);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    /// A free slot that names an owner (the protocol frees slots with none, and a producer
    /// claims with a CAS from exactly that) is another impossible stamp: the send reports the
    /// channel broken rather than claiming it or spinning on it.
    #[test]
    fn a_free_stamp_with_an_owner_disconnects_the_sender() {
        let (tx, _rx) = channel::<u64>(4).unwrap();
        tx.shared
            .slots
            .stamp(0)
            .store(stamp(0, 5, 1, crate::ring::mpmc::FREE), Ordering::Relaxed);
        assert_eq!(tx.try_send(1), Err(TrySendError::Disconnected(1)));
    }
}
