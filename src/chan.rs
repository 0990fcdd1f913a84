//! What every channel handle does regardless of algorithm: the create/open handshake, the
//! place it holds in the endpoint table, and leaving it (closing the channel when it was the
//! last endpoint). `spsc`, `mpmc`, `frame` and `pipe` build their handles on [`Chan`].
//!
//! Every decision about a channel's life is taken under its gate (`region/lock.rs`):
//!
//! - `create` makes the object exclusively, marks it as shmchan's, and holds its gate until the
//!   header is published, so an opener never sees a half-made channel as anything but "not
//!   yet".
//! - `open` checks the object's mark (another program's object is an error at once, and is
//!   never written), validates the header, checks the channel is not closed, and claims a
//!   place under the gate: a never-used one, or one whose endpoint detached or died, any number
//!   of times (`endpoint.rs`).
//! - The last endpoint out (found by asking the kernel about every other one), a `create` that
//!   finds the name held by an abandoned channel, and [`remove`](crate::remove) mark the channel
//!   closed and remove its name under the gate, after checking the name still refers to that
//!   object (`name.rs`).
//!
//! So exactly one of any number of concurrent creators succeeds, nobody joins a channel that is
//! being closed, and no name is ever removed once it refers to another object.

use std::time::{Duration, Instant};

use crate::endpoint::{self, RoleState};
use crate::error::Error;
use crate::layout::{Fingerprint, Geometry, Header, Kind, OPEN, SLEEPERS};
#[cfg(not(loom))]
use crate::name::{self, Found};
use crate::options::{Backend, Options};
use crate::region::{self, Gate, Region};
use crate::sync::{AtomicU64, Ordering};
use crate::wait::PROBE_INTERVAL;

/// Which side of the channel a handle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Sender,
    Receiver,
}

impl Role {
    fn other(self) -> Role {
        match self {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        }
    }
}

/// The shape a handle asks for.
pub(crate) struct Spec {
    pub(crate) kind: Kind,
    pub(crate) role: Role,
    pub(crate) fp: Fingerprint,
    pub(crate) max_senders: u32,
    pub(crate) max_receivers: u32,
    /// A broadcast topic's overflow mode and eviction delay in milliseconds, written into its
    /// control line by the creator (`layout::Control`); 0 for the other kinds.
    pub(crate) overflow: (u32, u32),
}

/// One attached endpoint of a channel: its region, validated geometry and table entry.
pub(crate) struct Chan {
    /// The region's header, checked once to lie inside the mapping (see [`Chan::header`]).
    header: std::ptr::NonNull<Header>,
    region: Region,
    pub(crate) geo: Geometry,
    role: Role,
    /// Our place in the endpoint table.
    entry: usize,
    /// The word we wrote there (our place's generation, our token, ATTACHED).
    word: u64,
    /// The fork generation this handle was made in: a forked child's copy of it refuses every
    /// operation and detaches nothing (`fork.rs`).
    generation: u32,
    /// The channel's incarnation ([`Life::incarnation`](crate::layout::Life)): if the object
    /// holds another channel by the time this handle leaves, it closes nothing.
    incarnation: u64,
    pub(crate) name: String,
    pub(crate) backend: Option<Backend>,
    /// When the peers were last checked for death (or the handle was made), on the coarse
    /// monotonic clock, in nanoseconds (see [`Chan::probe_due`]). Atomic so that MPMC handles
    /// can be shared between threads.
    last_probe: AtomicU64,
    /// The data doorbell's departure count when this handle last found a receiver attached
    /// (see [`Chan::receivers_left`]), in place in a [`Doorbell::state`] word with the sleeper
    /// flag clear: the word a send expects to find (see [`Chan::send_clear`]). Atomic so that
    /// MPMC handles can be shared between threads;
    /// process-private and outside the loom seam on purpose: every value stored is one that a
    /// walk of the table, made after reading it, found a receiver under, so whichever value a
    /// thread reads is right to compare with (loom exploring it too made the MPMC models ten
    /// times longer).
    #[allow(clippy::disallowed_types)]
    departures_seen: std::sync::atomic::AtomicU64,
}

// SAFETY: `header` points into `region`'s mapping, which `Chan` owns and which is `Send` and
// `Sync` (see `Region`); every field of the header is an atomic.
unsafe impl Send for Chan {}
// SAFETY: as above; `&Chan` hands out only `&Header`, whose fields are atomics.
unsafe impl Sync for Chan {}

/// Loom only: a channel's heap region, kept to attach endpoints to it later (what opening by
/// name does in production): `spsc::Receiver::loom_reopen`, `mpmc::Receiver::loom_reopen`.
#[cfg(loom)]
#[doc(hidden)]
pub struct LoomReopen(pub(crate) Region);

#[cfg(loom)]
impl LoomReopen {
    /// Join as `spec.role`, taking a never-used or vacant place.
    pub(crate) fn join(&self, spec: &Spec) -> Result<Chan, Error> {
        let region = self.0.share_heap().expect("a heap region");
        Chan::join_heap(region, "(in-process)", spec, None)
    }
}

/// `now + timeout`, or `None` (no deadline) if that is beyond what `Instant` can hold: a
/// timeout of `Duration::MAX` means "forever", not a panic.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A value for [`Life::incarnation`](crate::layout::Life) that no other channel has had and
/// nobody can guess (it keys byte-ring stamps): 64 bits from the kernel's random source
/// (`getrandom(2)`); should that fail, the clock, this process's id and a counter (unique, but
/// guessable by a local user who can see when the region was made).
fn new_incarnation() -> u64 {
    #[cfg(not(loom))]
    {
        let mut r = [0u8; 8];
        // SAFETY: `r` is valid for writes of 8 bytes for the duration of the call.
        let n = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
        if n == r.len() as isize {
            return u64::from_ne_bytes(r);
        }
        static COUNTER: crate::sync::AtomicU64 = crate::sync::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // Relaxed: a counter, nothing is published through it.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        nanos ^ (u64::from(std::process::id()) << 40) ^ n.rotate_left(20)
    }
    #[cfg(loom)]
    1
}

/// What a creator records about itself in the header's origin line: the time now
/// (nanoseconds since the Unix epoch), its pid and its real user id.
fn creator() -> (u64, u32, u32) {
    let created_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    #[cfg(not(loom))]
    let uid = crate::sys::getuid();
    #[cfg(loom)]
    let uid = 0;
    (created_ns, std::process::id(), uid)
}

/// The fork generation of this process (see `fork.rs`; always 0 under loom).
#[inline(always)]
fn generation() -> u32 {
    #[cfg(not(loom))]
    return crate::fork::generation();
    #[cfg(loom)]
    return 0;
}

/// How many times `create` tries again when the name it found was removed under it by a
/// racing reclaimer or closer.
#[cfg(not(loom))]
const CREATE_TRIES: usize = 64;

/// How long a dropped handle waits for the gate to close the channel (another process holds
/// it only for a few system calls, unless it is stopped); past that the channel is left for
/// the next `create` of its name (or `shmchan gc`) to reclaim.
#[cfg(not(loom))]
const CLOSE_WAIT: Duration = Duration::from_secs(1);

impl Chan {
    /// Create a named channel and attach to it as `spec.role`.
    #[cfg(not(loom))]
    pub(crate) fn create(name: &str, opts: &Options, spec: &Spec) -> Result<Chan, Error> {
        region::validate_name(name)?;
        let geo = geometry(opts, spec)?;
        let backend = &opts.backend;
        for _ in 0..CREATE_TRIES {
            let deadline = deadline_after(opts.open_timeout);
            match Region::create(name, backend, geo.region_len, opts.mode, deadline) {
                Ok((region, gate)) => {
                    return Self::init(region, gate, name, Some(backend.clone()), geo, spec);
                }
                Err(Error::AlreadyExists { .. }) => {
                    if let Some(chan) = Self::reclaim(name, opts, geo, spec)? {
                        return Ok(chan);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::AlreadyExists {
            name: name.to_owned(),
            backend: backend.clone(),
        })
    }

    /// The name exists: if it holds a channel nobody uses any more (abandoned, closed, or whose
    /// creator died), remove the name (`Ok(None)`: try to create again) or, where this process
    /// may not remove it, initialise the object anew for us (`Ok(Some(chan))`). A live channel
    /// or another program's object is never touched (`Err(AlreadyExists)`).
    #[cfg(not(loom))]
    fn reclaim(
        name: &str,
        opts: &Options,
        geo: Geometry,
        spec: &Spec,
    ) -> Result<Option<Chan>, Error> {
        let backend = &opts.backend;
        let exists = || Error::AlreadyExists {
            name: name.to_owned(),
            backend: backend.clone(),
        };
        let (region, gate) = match Region::open(name, backend, deadline_after(opts.open_timeout)) {
            Ok(r) => r,
            Err(Error::NotFound { .. }) => return Ok(None), // removed meanwhile: try again
            Err(_) => return Err(exists()),
        };
        if !region.is_named() {
            return Ok(None); // replaced meanwhile: try again
        }
        match name::classify(&region, name) {
            Found::Foreign(_) | Found::Live(_) => Err(exists()),
            found @ (Found::HalfMade | Found::Closed | Found::Abandoned) => {
                name::close(&region);
                match region.remove_name() {
                    Ok(()) => Ok(None),
                    // Only a channel that was complete is made anew in place: a half-made
                    // object may be a creator's a moment before it takes the gate.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
                        if found == Found::HalfMade {
                            Err(exists()) // (another user's, so likely its creator's, a moment early)
                        } else {
                            Self::reuse(region, gate, name, opts, geo, spec).map(Some)
                        }
                    }
                    Err(e) => Err(Error::Io {
                        op: "remove an abandoned channel's name",
                        name: name.to_owned(),
                        backend: backend.clone(),
                        source: e,
                    }),
                }
            }
        }
    }

    /// Make a closed channel's object, whose name this process may not remove (another user
    /// owns it), a new channel for us. Only if it has the permissions we were asked for: a
    /// channel meant to be private must not live in an object others can open.
    #[cfg(not(loom))]
    fn reuse(
        region: Region,
        gate: Gate,
        name: &str,
        opts: &Options,
        geo: Geometry,
        spec: &Spec,
    ) -> Result<Chan, Error> {
        let backend = &opts.backend;
        let (uid, mode) = region.owner_and_mode().unwrap_or((u32::MAX, 0));
        if mode != opts.mode {
            return Err(Error::Incompatible {
                name: name.to_owned(),
                backend: backend.clone(),
                detail: format!(
                    "an abandoned channel of user {uid} with mode {mode:o} is there, which this \
                     user may not remove and which cannot be used anew for mode {:o}; its owner \
                     or root can remove it (`shmchan rm`)",
                    opts.mode
                ),
            });
        }
        let region = region.resized(name, backend, geo.region_len)?;
        region.zero(geo.region_len);
        Self::init(region, gate, name, Some(backend.clone()), geo, spec)
    }

    /// Open a named channel and attach to it as `spec.role`.
    #[cfg(not(loom))]
    pub(crate) fn open(name: &str, opts: &Options, spec: &Spec) -> Result<Chan, Error> {
        region::validate_name(name)?;
        let deadline = deadline_after(opts.open_timeout);
        let not_ready = || Error::NotReady {
            name: name.to_owned(),
            backend: opts.backend.clone(),
            waited: opts.open_timeout,
        };
        loop {
            let (region, gate) = match Region::open(name, &opts.backend, deadline) {
                Err(Error::NotReady { .. }) => return Err(not_ready()),
                r => r?,
            };
            // Under the gate: another program's object (or another layout version) is an
            // error at once. A creator holds the gate until it publishes, so a region of ours
            // that is not ready now has a creator that died, or one that made the object a
            // moment ago and has not taken the gate yet. Wait (without the gate) for the
            // second. A name that meanwhile moved to another object (closed and made anew) is
            // looked up again.
            if let Err(detail) = name::mark_verdict(region.mark()) {
                if region.is_named() {
                    return Err(Error::Incompatible {
                        name: name.to_owned(),
                        backend: opts.backend.clone(),
                        detail,
                    });
                }
            }
            let ready = region.try_header().is_some_and(Header::is_ready);
            if ready && region.is_named() {
                return Self::join(region, gate, name, Some(opts.backend.clone()), spec);
            }
            drop((gate, region));
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(not_ready());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// An in-process channel on the heap: the creator's end and the other end.
    pub(crate) fn heap_pair(capacity: usize, spec: &Spec) -> Result<(Chan, Chan), Error> {
        let opts = Options::new().capacity(capacity);
        let geo = geometry(&opts, spec)?;
        let region = Region::heap(&geo)?;
        let other = region.share_heap().expect("a heap region can be shared");
        let first = Self::init(region, Gate::Heap, "(in-process)", None, geo, spec)?;
        let other_spec = Spec {
            role: spec.role.other(),
            ..*spec
        };
        let second = Self::join_heap(other, "(in-process)", &other_spec, None)?;
        Ok((first, second))
    }

    /// A heap region for an in-process creator and opener that run concurrently (the loom
    /// handshake model): the first region goes to [`Chan::init`], the second to
    /// [`Chan::join_heap`].
    #[cfg(loom)]
    pub(crate) fn heap_racing(
        capacity: usize,
        spec: &Spec,
    ) -> Result<(Region, Region, Geometry), Error> {
        let geo = geometry(&Options::new().capacity(capacity), spec)?;
        let region = Region::heap(&geo)?;
        let other = region.share_heap().expect("a heap region can be shared");
        Ok((region, other, geo))
    }

    /// Initialise a fresh zeroed region as the creator, attached as `spec.role`, and publish
    /// it; `gate` (held since the object was made) is released last.
    pub(crate) fn init(
        region: Region,
        gate: Gate,
        name: &str,
        backend: Option<Backend>,
        geo: Geometry,
        spec: &Spec,
    ) -> Result<Chan, Error> {
        if region.len() < geo.region_len {
            // The object shrank under us between sizing and mapping (a peer's ftruncate).
            return Err(Error::Incompatible {
                name: name.to_owned(),
                backend: backend.unwrap_or_default(),
                detail: format!(
                    "the region is {} bytes after it was sized to {}",
                    region.len(),
                    geo.region_len
                ),
            });
        }
        let hdr = region.header();
        hdr.write_identity(name, &spec.fp, &geo);
        let (created_ns, pid, uid) = creator();
        hdr.write_origin(&spec.fp, created_ns, pid, uid);
        let incarnation = new_incarnation();
        // Relaxed: published by `publish` (and written under the gate, which openers take).
        hdr.life.state.store(OPEN, Ordering::Relaxed);
        hdr.life.incarnation.store(incarnation, Ordering::Relaxed);
        if geo.kind == Kind::Mpmc {
            crate::ring::mpmc::init(&crate::ring::Slots::new(&region, &geo), geo.capacity);
        }
        if geo.kind == Kind::Broadcast {
            let ctl = region.control(&geo);
            // Relaxed: published by `publish` (Release), as the identity is.
            ctl.mode.store(spec.overflow.0, Ordering::Relaxed);
            ctl.evict_after_ms.store(spec.overflow.1, Ordering::Relaxed);
        }
        let (entry, word) = match attach(&region, &geo, name, &backend, spec.role) {
            Ok(claimed) => claimed,
            Err(e) => {
                // Never published: remove the name again (we hold the gate since we made it).
                let _ = region.remove_name();
                return Err(e);
            }
        };
        hdr.publish();
        drop(gate);
        // Outside the gate: faulting in a large region must not hold up others' opens.
        region.populate(geo.region_len);
        Ok(Chan::new(
            region,
            geo,
            spec.role,
            entry,
            word,
            incarnation,
            name,
            backend,
        ))
    }

    /// Join a region that is ready, holding its gate: validate it, check it is open, claim an
    /// endpoint entry.
    #[cfg(not(loom))]
    fn join(
        region: Region,
        gate: Gate,
        name: &str,
        backend: Option<Backend>,
        spec: &Spec,
    ) -> Result<Chan, Error> {
        let backend_or_heap = || backend.clone().unwrap_or_default();
        let hdr = region.header();
        let geo = hdr
            .validate(name, spec.kind, &spec.fp, region.len())
            .map_err(|detail| Error::Incompatible {
                name: name.to_owned(),
                backend: backend_or_heap(),
                detail,
            })?;
        // Relaxed: written under the gate, which we hold.
        if hdr.life.state.load(Ordering::Relaxed) != OPEN {
            return Err(Error::Closed {
                name: name.to_owned(),
                backend: backend_or_heap(),
            });
        }
        let (entry, word) = attach(&region, &geo, name, &backend, spec.role)?;
        // Relaxed: written by the creator under the gate, which we hold.
        let incarnation = hdr.life.incarnation.load(Ordering::Relaxed);
        drop(gate);
        // Wake anyone waiting for a peer (`wait_for_peer`): the claim above is the publish.
        hdr.data_bell.notify();
        hdr.space_bell.notify();
        region.populate(geo.region_len);
        Ok(Chan::new(
            region,
            geo,
            spec.role,
            entry,
            word,
            incarnation,
            name,
            backend,
        ))
    }

    /// Loom only: another handle on this channel's heap region, from which endpoints can join
    /// it later (as a restarted process opens a channel by name).
    #[cfg(loom)]
    pub(crate) fn loom_reopener(&self) -> LoomReopen {
        LoomReopen(
            self.region
                .share_heap()
                .expect("loom channels are on the heap"),
        )
    }

    /// Loom only: this handle's process dies. The kernel's word on its place says so at once
    /// (its witness is gone); with `reaped`, a peer has also marked its entry dead. The handle
    /// must then be forgotten, never dropped (a dead process detaches nothing).
    #[cfg(loom)]
    pub(crate) fn loom_die(&self, reaped: bool) {
        self.region.loom_kill(self.entry);
        if reaped {
            endpoint::declare_dead(self.header(), &self.header().endpoints[self.entry]);
        }
    }

    /// Join an in-process region: wait until `deadline` for it to be ready (the loom handshake
    /// model races an opener with the creator), validate it, claim an endpoint entry.
    pub(crate) fn join_heap(
        region: Region,
        name: &str,
        spec: &Spec,
        deadline: Option<Instant>,
    ) -> Result<Chan, Error> {
        let hdr = region.header();
        while !hdr.is_ready() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::NotReady {
                    name: name.to_owned(),
                    backend: Backend::default(),
                    waited: Duration::ZERO,
                });
            }
            crate::sync::yield_now();
        }
        let geo = hdr
            .validate(name, spec.kind, &spec.fp, region.len())
            .map_err(|detail| Error::Incompatible {
                name: name.to_owned(),
                backend: Backend::default(),
                detail,
            })?;
        let (entry, word) = attach(&region, &geo, name, &None, spec.role)?;
        // Relaxed: written by the creator before it published (Acquire in `is_ready` above).
        let incarnation = hdr.life.incarnation.load(Ordering::Relaxed);
        Ok(Chan::new(
            region,
            geo,
            spec.role,
            entry,
            word,
            incarnation,
            name,
            None,
        ))
    }

    #[allow(clippy::too_many_arguments)] // one private constructor, called from three places
    fn new(
        region: Region,
        geo: Geometry,
        role: Role,
        entry: usize,
        word: u64,
        incarnation: u64,
        name: &str,
        backend: Option<Backend>,
    ) -> Chan {
        crate::wait::register_process();
        // Before the handle records its fork generation: a fork must bump it in the child
        // even if this process never opens a named channel (`fork.rs`).
        // (Out of memory for them: the handle works, and a fork child's copy of it would not
        // know itself for a copy; nothing better can be done here.)
        #[cfg(not(loom))]
        let _ = crate::fork::install_handlers();
        // A sender starts from the table as it is now: the count read first (Acquire, as in
        // `receivers_left`), then the receivers' entries; if they are all gone, a count that
        // differs, so that every send walks the table until one attaches.
        let departures = {
            let hdr = region.header();
            let now = hdr.data_bell.state.load(Ordering::Acquire) as u32;
            let gone = role == Role::Sender
                && endpoint::role_state(hdr, range(&geo, Role::Receiver)) == RoleState::Gone;
            u64::from(if gone { now.wrapping_sub(1) } else { now })
        };
        Chan {
            header: std::ptr::NonNull::from(region.header()),
            region,
            geo,
            role,
            entry,
            word,
            generation: generation(),
            incarnation,
            name: name.to_owned(),
            backend,
            last_probe: AtomicU64::new(coarse_now_ns()),
            // Not the count now: the first send walks the table (the receivers may have gone
            // before we attached).
            #[allow(clippy::disallowed_types)]
            departures_seen: std::sync::atomic::AtomicU64::new(departures),
        }
    }

    pub(crate) fn region(&self) -> &Region {
        &self.region
    }

    /// The header: on every send and receive, so no check here (the one in
    /// [`Region::header`] was made when the handle was built).
    #[inline(always)]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: `header` came from `Region::header` of `self.region`, which checked the
        // mapping holds a header and keeps it mapped as long as `self` lives.
        unsafe { self.header.as_ref() }
    }

    /// Is this handle a forked child's copy of its parent's (which must do nothing)?
    #[inline(always)]
    pub(crate) fn forked(&self) -> bool {
        generation() != self.generation
    }

    /// Panic if this is a forked child's copy of the handle: for a loan's or a `Ref`'s
    /// `Deref`, which has no error to return, and whose slot belongs to the parent (the
    /// mapping is shared with it: a write through the copy would change the parent's message,
    /// and the parent may reuse the slot under a read).
    #[inline(always)]
    pub(crate) fn refuse_in_child(&self, what: &str) {
        if self.forked() {
            forked_access(what, &self.name);
        }
    }

    /// What the endpoints of the other role look like. With `probe`, the kernel is asked
    /// whether each attached one is alive (a system call each), and dead ones are marked.
    #[inline]
    pub(crate) fn peers(&self, probe: bool) -> RoleState {
        let range = range(&self.geo, self.role.other());
        if probe {
            endpoint::reap_dead(self.header(), &self.region, range.clone());
        }
        endpoint::role_state(self.header(), range)
    }

    /// Have the receivers all left (dropped their handles, or been found dead)? For a sender,
    /// before every attempt (but SPSC `send`'s first, which [`send_clear`](Self::send_clear)
    /// stands for): one load of the data doorbell's departure count (the word whose
    /// sleeper flag the send reads anyway) and of our private copy; the receivers' entries are
    /// read only when an endpoint left since we last read them Live.
    #[inline(always)]
    pub(crate) fn receivers_left(&self) -> bool {
        // SYNC POINT (departure): Acquire, pairs with the Release bump in `endpoint::departed`;
        // the walk in `receivers_gone` then sees the entry that changed before it.
        let now = self.header().data_bell.state.load(Ordering::Acquire) as u32;
        now != self
            .departures_seen
            .load(std::sync::atomic::Ordering::Relaxed) as u32
            && self.receivers_gone(now)
    }

    /// May a send go straight to its attempt? Yes when no receiver's sleeper flag is set and no
    /// endpoint left since this handle last found a receiver attached: what
    /// [`receiver_may_sleep`](Self::receiver_may_sleep) and
    /// [`receivers_left`](Self::receivers_left) check, in one load and one compare (they share
    /// the data doorbell's `state` word). Otherwise the send takes the path that checks each.
    #[inline(always)]
    pub(crate) fn send_clear(&self) -> bool {
        // Relaxed: a yes only skips the checks; a departure seen here (a changed word) sends the
        // send to `receivers_left`, whose Acquire load orders the walk of the table.
        self.header().data_bell.state.load(Ordering::Relaxed)
            == self
                .departures_seen
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The out-of-line part of [`receivers_left`](Self::receivers_left): read the receivers'
    /// entries. Remember `now` (read before them) only if one is attached: while none is, every
    /// send comes here and is refused, until a receiver attaches again.
    #[cold]
    #[inline(never)]
    fn receivers_gone(&self, now: u32) -> bool {
        if endpoint::role_state(self.header(), range(&self.geo, Role::Receiver)) == RoleState::Gone
        {
            return true;
        }
        // Relaxed: private; a value stored here was read before a walk that found a receiver,
        // so an endpoint that left after that walk bumped the count past it.
        self.departures_seen
            .store(u64::from(now), std::sync::atomic::Ordering::Relaxed);
        false
    }

    /// Is a receiver perhaps asleep, waiting for data (the data doorbell's sleeper flag)? For
    /// a sender about to send: that send will pay for waking it. One load of a line nobody
    /// writes while nobody sleeps.
    #[inline(always)]
    pub(crate) fn receiver_may_sleep(&self) -> bool {
        // Relaxed: a hint (what the notify after the push reads anyway); the probe decides.
        self.header().data_bell.state.load(Ordering::Relaxed) & SLEEPERS != 0
    }

    /// A sender found a receiver's sleeper flag set: ask the kernel whether any receiver
    /// lives. If none does, wake whoever else sleeps there (clearing the flag, so that the
    /// sends that follow do not ask again) and say so: the send is refused before anything is
    /// put in the ring.
    #[cold]
    #[inline(never)]
    pub(crate) fn receivers_died(&self) -> bool {
        let range = range(&self.geo, Role::Receiver);
        // The first live receiver settles it (one question to the kernel in the usual case).
        if endpoint::find_alive(self.header(), &self.region, range.clone()) {
            return false;
        }
        if endpoint::role_state(self.header(), range) != RoleState::Gone {
            return false; // none ever attached (a sleeper of another kind), or one just did
        }
        self.header().data_bell.wake();
        true
    }

    /// Can a peer still attach (the channel is named, and neither closed nor made anew since
    /// we joined)? In-process channels have no name: nobody can join them.
    pub(crate) fn joinable(&self) -> bool {
        if self.region.is_heap() {
            return false;
        }
        let life = &self.header().life;
        // Relaxed: written under the gate; a look, not a decision made under it.
        life.state.load(Ordering::Relaxed) == OPEN
            && life.incarnation.load(Ordering::Relaxed) == self.incarnation
    }

    /// The channel's key for byte-ring stamps (`ring/frame.rs`): its incarnation, a value
    /// unique to the channel that nobody outside its processes knows; odd, so that a stamp
    /// (a 16-aligned position XOR the key) is never the 0 of memory nobody wrote.
    pub(crate) fn key(&self) -> u64 {
        self.incarnation | 1
    }

    /// Our index in the endpoint table.
    pub(crate) fn entry(&self) -> usize {
        self.entry
    }

    /// The low 8 bits of our place's generation (what MPMC stamps record beside our place).
    pub(crate) fn generation8(&self) -> u8 {
        endpoint::generation_of(self.word) as u8
    }

    /// Our place's generation (how many endpoints have held it, us included).
    pub(crate) fn place_generation(&self) -> u32 {
        endpoint::generation_of(self.word)
    }

    /// May the slots held by endpoint `o` of generation `generation` (low 8 bits) be repaired
    /// (see [`endpoint::owner_gone`])?
    pub(crate) fn owner_gone(&self, o: usize, generation: u8, probe: bool) -> bool {
        let used = self.geo.senders().start..self.geo.receivers().end;
        endpoint::owner_gone(self.header(), &self.region, used, o, generation, probe)
    }

    /// True at most once per [`PROBE_INTERVAL`]: time to look for dead peers (for the `try_`
    /// calls and the send fast path, which have no wait loop to pace them).
    pub(crate) fn probe_due(&self) -> bool {
        if cfg!(loom) {
            return false; // deterministic models (see `wait::wait_until`)
        }
        // The coarse clock (a read of the kernel's last tick, a few ns, resolution a tick of
        // 1-10 ms) paces a 40 ms interval well enough: the precise one cost the sender about
        // 5% of its time in an 8-byte stream (a clock read every 64 messages, `perf` of
        // `stream/paired_spsc_8B`).
        let now = coarse_now_ns();
        let last = self.last_probe.load(Ordering::Relaxed);
        // Relaxed: a timestamp for pacing only; the CAS lets one of several threads probe.
        now.saturating_sub(last) >= PROBE_INTERVAL.as_nanos() as u64
            && self
                .last_probe
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Called every so many sends (see `handle::poll_send`): if a probe is due, ask the kernel
    /// whether the receivers are alive, so that sends to a dead receiver stop succeeding
    /// within about a probe interval even when the ring never fills.
    #[cold]
    #[inline(never)]
    pub(crate) fn checkpoint(&self) {
        if self.probe_due() {
            self.peers(true);
        }
    }
}

impl Drop for Chan {
    fn drop(&mut self) {
        if self.forked() {
            return; // a forked child's copy: the parent still holds this endpoint
        }
        let hdr = self.header();
        if endpoint::detach(&hdr.endpoints[self.entry], self.word) {
            endpoint::departed(hdr);
            // Wake every sleeper so it sees the detach (each re-checks after waking).
            hdr.data_bell.wake();
            hdr.space_bell.wake();
        }
        self.region.release_endpoint(self.entry);
        #[cfg(not(loom))]
        if !self.region.is_heap() {
            self.close_if_unused();
        }
    }
}

impl Chan {
    /// After detaching: if no endpoint is alive any more, close the channel and remove its
    /// name (under the gate; see [`name::close_if_unused`]).
    #[cfg(not(loom))]
    fn close_if_unused(&self) {
        if let Ok(_gate) = self.region.gate(deadline_after(CLOSE_WAIT)) {
            name::close_if_unused(&self.region, self.incarnation);
        }
    }
}

/// Claim a place of `role` for this process (a never-used one, or one whose endpoint left).
fn attach(
    region: &Region,
    geo: &Geometry,
    name: &str,
    backend: &Option<Backend>,
    role: Role,
) -> Result<(usize, u64), Error> {
    let io = |op, source| Error::Io {
        op,
        name: name.to_owned(),
        backend: backend.clone().unwrap_or_default(),
        source,
    };
    let token = region
        .token()
        .map_err(|e| io("make the liveness token", e))?;
    let pid = std::process::id();
    match endpoint::attach(region.header(), region, range(geo, role), token, pid) {
        Ok(Ok(claimed)) => Ok(claimed),
        Ok(Err(detail)) => Err(Error::EndpointTaken {
            name: name.to_owned(),
            role: role.as_str(),
            detail,
        }),
        Err(e) => Err(io("lock an endpoint entry (F_OFD_SETLK)", e)),
    }
}

fn range(geo: &Geometry, role: Role) -> core::ops::Range<usize> {
    match role {
        Role::Sender => geo.senders(),
        Role::Receiver => geo.receivers(),
    }
}

/// The payload of a typed handle (`spsc`, `mpmc`, `broadcast` of a `T`): `T`, under the name
/// the options give ([`Options::type_name`]) if any.
pub(crate) fn payload<T>(opts: &Options) -> Result<Fingerprint, Error> {
    Fingerprint::of_named::<T>(opts.type_name.as_deref())
        .map_err(|reason| Error::InvalidOptions { reason })
}

fn geometry(opts: &Options, spec: &Spec) -> Result<Geometry, Error> {
    Geometry::new(
        spec.kind,
        &spec.fp,
        opts.capacity as u64,
        spec.max_senders,
        spec.max_receivers,
    )
    .map_err(|reason| Error::InvalidOptions { reason })
}

#[cold]
#[inline(never)]
fn forked_access(what: &str, name: &str) -> ! {
    panic!(
        "{what} of channel {name:?} used in a child created by fork: its slot belongs to the \
         parent process (a forked child's copies of handles, loans and references refuse to \
         act)"
    )
}

/// The coarse monotonic clock for [`Chan::probe_due`] (under loom, which never probes: 0).
fn coarse_now_ns() -> u64 {
    #[cfg(not(loom))]
    return crate::sys::coarse_now_ns();
    #[cfg(loom)]
    return 0;
}
