//! What every channel handle does regardless of algorithm: the create/open handshake, the
//! endpoint it holds, the reference it counts, and removing the name when the last handle
//! leaves. `spsc` (and later `mpmc`) build their handles on [`Chan`].

use std::time::{Duration, Instant};

use crate::endpoint::{self, RoleState};
use crate::error::Error;
use crate::layout::{Fingerprint, Geometry, Header, Kind};
use crate::options::{Backend, Options};
use crate::region::{self, Region};
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
}

/// One attached endpoint of a channel: its region, validated geometry and table entry.
pub(crate) struct Chan {
    region: Region,
    pub(crate) geo: Geometry,
    role: Role,
    /// Our index in the endpoint table.
    entry: usize,
    /// The word we wrote there.
    word: u64,
    /// The process that attached (a forked child's copy of the handle must not detach it).
    pid: u32,
    pub(crate) name: String,
    pub(crate) backend: Option<Backend>,
    /// When the peers were last checked for death, in nanoseconds since `created` (see
    /// [`Chan::probe_due`]). Atomic so that MPMC handles can be shared between threads.
    last_probe: AtomicU64,
    created: Instant,
}

impl Chan {
    /// Create a named channel and attach to it as `spec.role`.
    #[cfg(not(loom))]
    pub(crate) fn create(name: &str, opts: &Options, spec: &Spec) -> Result<Chan, Error> {
        region::validate_name(name)?;
        let geo = geometry(opts, spec)?;
        let region = match Region::create(name, &opts.backend, geo.region_len, opts.mode) {
            Err(Error::AlreadyExists { .. }) if Self::reclaim_abandoned(name, &opts.backend) => {
                Region::create(name, &opts.backend, geo.region_len, opts.mode)?
            }
            r => r?,
        };
        Ok(Self::init(
            region,
            name,
            Some(opts.backend.clone()),
            geo,
            spec.role,
            &spec.fp,
        ))
    }

    /// Remove the name if it holds a shmchan region whose every endpoint is detached or
    /// belongs to a dead process (its handles were all killed, so nobody removed it). Returns
    /// true if the name was removed. A region that is not ready, not shmchan's, or has a live
    /// endpoint is left alone.
    #[cfg(not(loom))]
    fn reclaim_abandoned(name: &str, backend: &Backend) -> bool {
        let Ok(region) = Region::open(name, backend, Instant::now()) else {
            return false;
        };
        let hdr = region.header();
        if !hdr.is_ready() || !hdr.looks_like_shmchan() {
            return false;
        }
        let n = hdr.endpoint_count().min(crate::layout::MAX_ENDPOINTS);
        if endpoint::reap_dead(hdr, 0..n) {
            return false;
        }
        region.remove_name();
        true
    }

    /// Open a named channel and attach to it as `spec.role`.
    #[cfg(not(loom))]
    pub(crate) fn open(name: &str, opts: &Options, spec: &Spec) -> Result<Chan, Error> {
        region::validate_name(name)?;
        let deadline = Instant::now() + opts.open_timeout;
        // Region and header both wait until `deadline`; report the whole timeout.
        let waited = |e| match e {
            Error::NotReady { name, backend, .. } => Error::NotReady {
                name,
                backend,
                waited: opts.open_timeout,
            },
            e => e,
        };
        let region = Region::open(name, &opts.backend, deadline).map_err(waited)?;
        Self::join(region, name, Some(opts.backend.clone()), spec, deadline).map_err(waited)
    }

    /// An in-process channel on the heap: the creator's end and the other end.
    pub(crate) fn heap_pair(capacity: usize, spec: &Spec) -> Result<(Chan, Chan), Error> {
        let opts = Options::new().capacity(capacity);
        let geo = geometry(&opts, spec)?;
        let region = Region::heap(&geo);
        let other = region.share_heap().expect("a heap region can be shared");
        let first = Self::init(region, "(in-process)", None, geo, spec.role, &spec.fp);
        let other_spec = Spec {
            role: spec.role.other(),
            ..*spec
        };
        let second = Self::join(other, "(in-process)", None, &other_spec, Instant::now())?;
        Ok((first, second))
    }

    /// A heap region for an in-process creator and opener that run concurrently (the loom
    /// handshake model): the first region goes to [`Chan::init`], the second to [`Chan::join`].
    #[cfg(loom)]
    pub(crate) fn heap_racing(
        capacity: usize,
        spec: &Spec,
    ) -> Result<(Region, Region, Geometry), Error> {
        let geo = geometry(&Options::new().capacity(capacity), spec)?;
        let region = Region::heap(&geo);
        let other = region.share_heap().expect("a heap region can be shared");
        Ok((region, other, geo))
    }

    /// Initialise a fresh zeroed region as the creator, attached as `role`, and publish it.
    pub(crate) fn init(
        region: Region,
        name: &str,
        backend: Option<Backend>,
        geo: Geometry,
        role: Role,
        fp: &Fingerprint,
    ) -> Chan {
        let hdr = region.header();
        hdr.write_identity(name, fp, &geo);
        hdr.refs.store(1, Ordering::Relaxed); // published by `publish`
        if geo.kind == Kind::Mpmc {
            crate::ring::mpmc::init(&crate::ring::Slots::new(&region, &geo), geo.capacity);
        }
        let word = endpoint::my_word();
        let entry = endpoint::attach(hdr, range(&geo, role), word)
            .expect("a fresh region has free endpoint entries");
        hdr.publish();
        Chan::new(region, geo, role, entry, word, name, backend)
    }

    /// Join a region someone else created: wait until `deadline` for it to be ready, validate
    /// it, take a reference and an endpoint entry.
    pub(crate) fn join(
        region: Region,
        name: &str,
        backend: Option<Backend>,
        spec: &Spec,
        deadline: Instant,
    ) -> Result<Chan, Error> {
        let backend_or_heap = || backend.clone().unwrap_or(Backend::Posix);
        let hdr = region.header();
        let mut spins = 0u32;
        while !hdr.is_ready() {
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    name: name.to_owned(),
                    backend: backend_or_heap(),
                    waited: Duration::ZERO,
                });
            }
            spins += 1;
            if cfg!(loom) || spins < 100 {
                crate::sync::yield_now();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let geo = hdr
            .validate(name, spec.kind, &spec.fp, region.len())
            .map_err(|detail| Error::Incompatible {
                name: name.to_owned(),
                backend: backend_or_heap(),
                detail,
            })?;
        if !endpoint::acquire_ref(hdr) {
            return Err(Error::Closed {
                name: name.to_owned(),
                backend: backend_or_heap(),
            });
        }
        let word = endpoint::my_word();
        match endpoint::attach(hdr, range(&geo, spec.role), word) {
            Ok(entry) => Ok(Chan::new(
                region, geo, spec.role, entry, word, name, backend,
            )),
            Err(detail) => {
                if endpoint::release_ref(hdr) {
                    region.remove_name();
                }
                Err(Error::EndpointTaken {
                    name: name.to_owned(),
                    role: spec.role.as_str(),
                    detail,
                })
            }
        }
    }

    fn new(
        region: Region,
        geo: Geometry,
        role: Role,
        entry: usize,
        word: u64,
        name: &str,
        backend: Option<Backend>,
    ) -> Chan {
        crate::wait::register_process();
        Chan {
            region,
            geo,
            role,
            entry,
            word,
            pid: std::process::id(),
            name: name.to_owned(),
            backend,
            last_probe: AtomicU64::new(0),
            created: Instant::now(),
        }
    }

    pub(crate) fn region(&self) -> &Region {
        &self.region
    }

    pub(crate) fn header(&self) -> &Header {
        self.region.header()
    }

    /// What the endpoints of the other role look like. With `probe`, entries whose process died
    /// are found and reaped (a system call per attached peer).
    #[inline]
    pub(crate) fn peers(&self, probe: bool) -> RoleState {
        endpoint::role_state(self.header(), range(&self.geo, self.role.other()), probe)
    }

    /// Our index in the endpoint table.
    pub(crate) fn entry(&self) -> usize {
        self.entry
    }

    /// May the slots held by endpoint `o` be repaired (see [`endpoint::owner_gone`])?
    pub(crate) fn owner_gone(&self, o: usize, probe: bool) -> bool {
        let used = self.geo.senders().start..self.geo.receivers().end;
        endpoint::owner_gone(self.header(), used, o, probe)
    }

    /// True at most once per [`PROBE_INTERVAL`]: time to look for dead peers (for the `try_`
    /// calls, which have no wait loop to pace them).
    pub(crate) fn probe_due(&self) -> bool {
        let now = self.created.elapsed().as_nanos() as u64;
        let last = self.last_probe.load(Ordering::Relaxed);
        // Relaxed: a timestamp for pacing only; the CAS lets one of several threads probe.
        now.saturating_sub(last) >= PROBE_INTERVAL.as_nanos() as u64
            && self
                .last_probe
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

impl Drop for Chan {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            return; // a forked child's copy: the parent still holds this endpoint
        }
        let hdr = self.region.header();
        // Reap peers that died without detaching while we still hold our reference, so that
        // if we are the last live handle our release below reaches 0 and removes the name.
        endpoint::reap_dead(hdr, self.geo.senders().start..self.geo.receivers().end);
        if endpoint::detach(&hdr.endpoints[self.entry], self.word) {
            // Wake every sleeper so it sees the detach (each re-checks after waking).
            hdr.data_bell.wake();
            hdr.space_bell.wake();
            if endpoint::release_ref(hdr) {
                self.region.remove_name();
            }
        }
    }
}

fn range(geo: &Geometry, role: Role) -> core::ops::Range<usize> {
    match role {
        Role::Sender => geo.senders(),
        Role::Receiver => geo.receivers(),
    }
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
