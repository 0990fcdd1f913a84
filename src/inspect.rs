//! Seeing channels from outside: which exist on a backend, and what each one's header says.
//!
//! What the `shmchan` command (`ls`, `stat`, `watch`) prints, as a library, so that monitoring
//! can be built on it. Inspection only looks: it opens the object read-only and copies just its
//! header (and a broadcast topic's control and subscriber lines, [`Channel::topic`]) into this
//! process with `pread` (System V: attaches the segment `SHM_RDONLY`), never
//! takes an endpoint, a lock or the gate, never wakes anyone and never writes a byte. POSIX
//! objects and files are never mapped, so one that another process shrinks while it is read is
//! reported as it is then found (empty, truncated, resized), never a SIGBUS; a System V segment
//! cannot change size. Liveness is asked of the kernel the way peers ask
//! it (`F_OFD_GETLK` on the endpoint's lock byte; for System V, `IPC_STAT` of the endpoint's
//! token segment), so an endpoint reads as alive exactly when its peers would see it alive, and
//! nothing is marked dead by looking.
//!
//! Everything read from a header is validated before it is used or shown: a truncated, foreign
//! or hostile object gives an error or an [`State::Incompatible`] channel, never a panic.
//!
//! ```
//! use shmchan::{inspect, spsc, Options};
//! # let name = format!("doc-inspect-{}", std::process::id());
//! let tx = spsc::Sender::<u64>::create(&name, &Options::new().capacity(8))?;
//! tx.send(7)?;
//!
//! let ch = inspect::stat(&name, &Options::new().get_backend())?;
//! assert_eq!(ch.state, inspect::State::Live);
//! let ring = ch.ring.as_ref().unwrap();
//! assert_eq!(ring.kind, inspect::Kind::Spsc);
//! assert_eq!(ring.payload, "u64");
//! assert_eq!((ring.capacity, ring.len, ring.sent, ring.received), (8, 1, 1, 0));
//! assert_eq!(ch.endpoints.len(), 1);
//! assert!(ch.endpoints[0].alive);
//!
//! // It is listed too.
//! let all = inspect::list(&shmchan::Backend::Posix)?;
//! assert!(all.channels.iter().any(|c| c.name == name));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::CString;
use std::fmt;
use std::io;
use std::mem::offset_of;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::broadcast::Overflow;
use crate::endpoint;
use crate::error::Error;
use crate::layout::{
    BLOCK, CLOSED, Control, Fingerprint, Geometry, Header, Identity, Kind as LayoutKind, LINE,
    MAGIC, MAX_ENDPOINTS, OVERWRITE, Sub, VERSION,
};
use crate::options::{Backend, Options};
use crate::region::{self, sysv::Attachment};
use crate::sync::Ordering;
use crate::sys;

/// The layout version this build of shmchan reads and writes.
pub const LAYOUT_VERSION: u32 = VERSION;

/// Bytes of the header this build reads (the smallest object a channel can be).
pub const HEADER_BYTES: u64 = size_of::<Header>() as u64;

/// What a channel is, as one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// At least one endpoint is attached and its process is alive (as the kernel vouches).
    Live,
    /// Every endpoint that attached is gone (detached, or its process dead), or the channel
    /// was closed: nobody will use it again. `shmchan gc` (or [`remove`](crate::remove))
    /// removes it.
    Abandoned,
    /// Its creator has not published the header: still at work, or died before it finished
    /// ([`Channel::problem`] says which).
    NotReady,
    /// Another layout version, or a header that does not make sense ([`Channel::problem`]
    /// says what); nothing else in it is trusted.
    Incompatible,
}

impl State {
    /// `"live"`, `"abandoned"`, `"not-ready"` or `"incompatible"` (the `--json` values).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Abandoned => "abandoned",
            State::NotReady => "not-ready",
            State::Incompatible => "incompatible",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// [`spsc`](crate::spsc): fixed-size messages, one sender, one receiver.
    Spsc,
    /// [`mpmc`](crate::mpmc): fixed-size messages, many senders and receivers.
    Mpmc,
    /// [`frame`](crate::frame): variable-size frames in a byte ring.
    Frame,
    /// [`pipe`](crate::pipe): a byte stream over a byte ring.
    Pipe,
    /// [`broadcast`](crate::broadcast): one publisher, subscribers that each read every
    /// message.
    Broadcast,
}

impl Kind {
    /// `"spsc"`, `"mpmc"`, `"frame"`, `"pipe"` or `"broadcast"` (the `--json` values).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Spsc => "spsc",
            Kind::Mpmc => "mpmc",
            Kind::Frame => "frame",
            Kind::Pipe => "pipe",
            Kind::Broadcast => "broadcast",
        }
    }

    /// Does the ring count bytes (frames and pipes) rather than messages?
    pub fn counts_bytes(self) -> bool {
        matches!(self, Kind::Frame | Kind::Pipe)
    }

    fn from_layout(k: LayoutKind) -> Kind {
        match k {
            LayoutKind::Spsc => Kind::Spsc,
            LayoutKind::Mpmc => Kind::Mpmc,
            LayoutKind::Frame => Kind::Frame,
            LayoutKind::Pipe => Kind::Pipe,
            LayoutKind::Broadcast => Kind::Broadcast,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side an endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends (a `Sender` or a pipe `Writer`).
    Sender,
    /// Receives (a `Receiver` or a pipe `Reader`).
    Receiver,
}

impl Role {
    /// `"sender"` or `"receiver"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        }
    }
}

/// What the endpoint table says of an entry (the kernel's word on its process is
/// [`Endpoint::alive`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointState {
    /// Claimed and not left: alive, or dead and not yet noticed by a peer.
    Attached,
    /// Its handle was dropped.
    Detached,
    /// A peer found its process gone and marked it.
    Dead,
}

impl EndpointState {
    /// `"attached"`, `"detached"` or `"dead"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Attached => "attached",
            EndpointState::Detached => "detached",
            EndpointState::Dead => "dead",
        }
    }
}

/// One place of a channel's endpoint table that some process claimed, and its current (or
/// last) occupant. Places are reused: when an occupant detaches or dies, the next endpoint of
/// its role to attach takes the place.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// Its place in the table.
    pub index: usize,
    /// Sender or receiver.
    pub role: Role,
    /// The pid of the place's current (or last) occupant, as that process's pid namespace
    /// numbers it (for people; liveness is never decided on it).
    pub pid: u32,
    /// How many endpoints have held this place over the channel's life (1 for the first
    /// occupant; counted modulo 2^30).
    pub attached: u32,
    /// What the table says.
    pub state: EndpointState,
    /// Attached, and the kernel says its process holds it now.
    pub alive: bool,
}

/// What the system says of the object that holds a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Object {
    /// Where it is: a path, or the System V key and id.
    pub location: String,
    /// Owner's user id.
    pub owner_uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// System V only: the segment's id.
    pub sysv_id: Option<i32>,
    /// System V only: the segment's key.
    pub sysv_key: Option<i32>,
}

/// A channel's ring as its header describes it (present once the header is published and
/// valid).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ring {
    /// Which kind of channel.
    pub kind: Kind,
    /// The payload type's name without module paths (`Tick<u64>`), as its creator recorded it;
    /// `bytes` for frames and pipes.
    pub payload: String,
    /// Size of one payload value in bytes (1 for frames and pipes).
    pub payload_size: u64,
    /// Alignment of the payload type.
    pub payload_align: u64,
    /// Ring capacity: messages for SPSC and MPMC, bytes for frames and pipes.
    pub capacity: u64,
    /// What the ring holds now, in the same unit as `capacity` (clamped to `0..=capacity`).
    ///
    /// For a broadcast topic, whose ring every subscriber reads at its own pace, the lag of
    /// its slowest *active* subscriber ([`Topic::slowest`]: attached, alive and not evicted),
    /// 0 with none: how much of the ring some subscriber still has to read. In
    /// [`Block`](crate::broadcast::Overflow::Block) mode the publisher waits when it reaches
    /// `capacity`; in `Overwrite` mode that subscriber is about to lose messages.
    pub len: u64,
    /// Messages sent since the channel was made (for frames and pipes: bytes of ring written,
    /// record headers and padding included). The producer position; for MPMC a hint that may
    /// trail by the sends in flight; for a broadcast topic the publisher's position. Wraps at
    /// 2^64.
    pub sent: u64,
    /// Messages received since the channel was made (frames and pipes: bytes of ring freed).
    /// The consumer position, as `sent`. A broadcast topic has no one consumer position: this
    /// is `sent - len`, the position of its slowest active subscriber (`sent` with none); each
    /// subscriber's own is in [`Channel::topic`].
    pub received: u64,
    /// How many senders the channel takes (a broadcast topic: 1, its publisher).
    pub max_senders: u32,
    /// How many receivers the channel takes attached at once (a broadcast topic: its
    /// `max_subscribers`).
    pub max_receivers: u32,
}

/// What a broadcast topic's own lines say: its overflow mode, and each subscriber place that
/// some process claimed, with its position.
///
/// ```
/// use shmchan::{broadcast, inspect, Options};
/// # let name = format!("doc-inspect-topic-{}", std::process::id());
/// let mut tx = broadcast::Publisher::<u64>::create(&name, &Options::new().capacity(8))?;
/// let rx = broadcast::Subscriber::<u64>::open(&name, &Options::new())?; // another process, usually
/// for i in 0..3 {
///     tx.send(i)?;
/// }
///
/// let ch = inspect::stat(&name, &Options::new().get_backend())?;
/// let topic = ch.topic.as_ref().unwrap();
/// assert_eq!(topic.overflow, broadcast::Overflow::Overwrite);
/// let sub = &topic.subscribers[0];
/// assert_eq!((sub.index, sub.lag, sub.lagged, sub.evicted), (1, 3, 0, false));
/// assert!(sub.alive && sub.is_active());
/// let ring = ch.ring.as_ref().unwrap();
/// assert_eq!((ring.sent, ring.len), (3, 3)); // len: the slowest subscriber's lag
/// # drop(rx);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Topic {
    /// What the publisher does when a subscriber is a ring behind (as the topic was made).
    pub overflow: crate::broadcast::Overflow,
    /// Every subscriber place some subscriber claimed, in place order (the publisher, place 0,
    /// is in [`Channel::endpoints`]).
    pub subscribers: Vec<Subscriber>,
}

impl Topic {
    /// The active subscriber ([`Subscriber::is_active`]) with the largest lag (the first in
    /// place order among equals), if any: the one a `Block` publisher waits for first.
    pub fn slowest(&self) -> Option<&Subscriber> {
        self.subscribers.iter().filter(|s| s.is_active()).fold(
            None,
            |best: Option<&Subscriber>, s| match best {
                Some(b) if b.lag >= s.lag => Some(b),
                _ => Some(s),
            },
        )
    }

    /// How many subscribers are active (attached, alive, not evicted).
    pub fn active(&self) -> usize {
        self.subscribers.iter().filter(|s| s.is_active()).count()
    }
}

/// One subscriber place of a broadcast topic that some process claimed: its current (or last)
/// occupant, as [`Endpoint`], and that occupant's position in the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subscriber {
    /// Its place in the endpoint table (1 to the topic's `max_subscribers`).
    pub index: usize,
    /// The pid of the place's current (or last) occupant (for people).
    pub pid: u32,
    /// How many subscribers have held this place (counted modulo 2^30).
    pub attached: u32,
    /// What the table says.
    pub state: EndpointState,
    /// Attached, and the kernel says its process holds the place now.
    pub alive: bool,
    /// The next position it reads, as it last published it: a subscriber publishes its
    /// cursor every few messages (64; in `Block` mode at most a quarter of the ring) and
    /// whenever it finds nothing to read, so this may trail where it really is by that much.
    pub cursor: u64,
    /// Messages published and not yet read by it, as far as `cursor` says: `sent - cursor`,
    /// clamped to `0..=capacity` (the ring holds no more; a subscriber further behind has lost
    /// messages, or will be told so).
    pub lag: u64,
    /// Messages it was told it lost (the sum of its `Lagged(n)`) since it took the place.
    pub lagged: u64,
    /// `Block` mode: the publisher evicted this occupant (it held the publisher back longer
    /// than `evict_after`); its receives say [`Evicted`](crate::broadcast::RecvError::Evicted).
    pub evicted: bool,
}

impl Subscriber {
    /// Attached, alive and not evicted: a subscriber the publisher of a `Block` topic waits
    /// for, and the ones [`Ring::len`] is measured against.
    pub fn is_active(&self) -> bool {
        self.state == EndpointState::Attached && self.alive && !self.evicted
    }
}

/// Who made the channel and when (layout version 3 on).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Origin {
    /// When it was created (the creator's clock).
    pub created: SystemTime,
    /// The creator's pid, as its pid namespace numbers it.
    pub creator_pid: u32,
    /// The creator's user id.
    pub creator_uid: u32,
}

/// Everything known about one channel, read at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Channel {
    /// The channel's name.
    pub name: String,
    /// The backend it lives on.
    pub backend: Backend,
    /// What it is, in one word.
    pub state: State,
    /// For a channel that is not ready, incompatible or closed: what is wrong, in words.
    pub problem: Option<String>,
    /// The layout version in its header.
    pub version: u32,
    /// What the system says of its object.
    pub object: Object,
    /// Its ring (when the header is published and valid).
    pub ring: Option<Ring>,
    /// Who made it and when (when the header is published and valid).
    pub origin: Option<Origin>,
    /// Every endpoint entry some process claimed, senders first (a broadcast topic: the
    /// publisher at place 0, then the subscribers, which [`topic`](Self::topic) shows with
    /// their positions).
    pub endpoints: Vec<Endpoint>,
    /// A broadcast topic's overflow mode and subscribers (when the header is published and
    /// valid); `None` for the other kinds.
    pub topic: Option<Topic>,
    /// Which channel this is, of all that have had its name: a value its creator chose, unique
    /// to it (when the header is published and valid). A channel removed and created anew
    /// under the same name, or made anew in the same object, has another one; monitoring that
    /// compares counts between looks (as `shmchan watch` does) must start again when it changes.
    pub incarnation: Option<u64>,
}

/// What [`list`] found on a backend.
#[derive(Debug)]
#[non_exhaustive]
pub struct Listing {
    /// The channels, sorted by name.
    pub channels: Vec<Channel>,
    /// POSIX objects and files that could not be read (another user's, say), which may or may
    /// not be channels, as errors naming them. A System V segment that cannot be read has no
    /// name this process can learn (it is in the header), so it is only in
    /// [`skipped`](Self::skipped).
    pub unreadable: Vec<Error>,
    /// Every object of the backend that could not be read, System V segments included: where
    /// it is, whose, and why. An object that is not a channel can look the same from outside,
    /// so these may or may not be channels.
    pub skipped: Vec<Unreadable>,
}

/// An object [`list`] could not read: what the system says of it, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct Unreadable {
    /// The backend it is on.
    pub backend: Backend,
    /// The channel name its path gives (POSIX objects and files); `None` for a System V
    /// segment, whose name is in the header that could not be read.
    pub name: Option<String>,
    /// Where it is: its path, or its System V key and id.
    pub location: String,
    /// Its owner's user id, when the system says it.
    pub owner_uid: Option<u32>,
    /// Its permission bits, when the system says them.
    pub mode: Option<u32>,
    /// Its size in bytes, when the system says it.
    pub size: Option<u64>,
    /// What could not be done (`"open (read-only)"`, `"read the segment's status (shmctl
    /// SHM_STAT)"`).
    pub op: &'static str,
    /// Why: the operating system's error (`PermissionDenied` for another user's object), or
    /// what was found instead.
    pub error: io::Error,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.location)?;
        let mut what = Vec::new();
        if let Some(uid) = self.owner_uid {
            what.push(format!("owner uid {uid}"));
        }
        if let Some(mode) = self.mode {
            what.push(format!("mode {mode:04o}"));
        }
        if let Some(size) = self.size {
            what.push(format!("{size} bytes"));
        }
        if !what.is_empty() {
            write!(f, " ({})", what.join(", "))?;
        }
        write!(f, ": {} failed: {}", self.op, self.error)
    }
}

/// Every shmchan channel of a backend: POSIX objects in `/dev/shm`, System V segments (found
/// through the kernel's segment table) and the files of a [`Backend::File`] directory that
/// carry shmchan's mark, whatever their layout version. An object that a creator killed
/// before it wrote the header carries no mark and is not listed (name it to [`stat`] or
/// [`remove`](crate::remove); the next `create` of its name reclaims it too).
///
/// # Errors
///
/// [`Error::Io`] if the backend cannot be listed at all (a missing directory, say); objects
/// that cannot be read (another user's, say) are returned in [`Listing::skipped`], with what
/// the system says of them and why.
///
/// ```
/// let listing = shmchan::inspect::list(&shmchan::Backend::SysV)?;
/// for ch in &listing.channels {
///     println!("{} {}", ch.name, ch.state);
/// }
/// # Ok::<(), shmchan::Error>(())
/// ```
pub fn list(backend: &Backend) -> Result<Listing, Error> {
    let mut listing = Listing {
        channels: Vec::new(),
        unreadable: Vec::new(),
        skipped: Vec::new(),
    };
    match backend {
        Backend::Posix | Backend::File(_) => {
            let dir = dir_of(backend);
            let entries = std::fs::read_dir(&dir).map_err(|source| Error::Io {
                op: "list the directory",
                name: String::new(),
                backend: backend.clone(),
                source,
            })?;
            for entry in entries.flatten() {
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue; // not UTF-8: no channel has such a name
                };
                if region::validate_name(&name).is_err() {
                    continue;
                }
                match read_file_object(&name, backend, true) {
                    Ok(Some(ch)) => listing.channels.push(ch),
                    Ok(None) => {}
                    Err(Error::NotFound { .. }) => {} // removed meanwhile
                    Err(e) => {
                        listing
                            .skipped
                            .push(unreadable_file(&name, backend, &dir, &e));
                        listing.unreadable.push(e);
                    }
                }
            }
        }
        Backend::SysV => list_sysv(&mut listing)?,
    }
    listing.channels.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

/// What is known of POSIX object or file `name` that could not be read (error `e`).
fn unreadable_file(name: &str, backend: &Backend, dir: &std::path::Path, e: &Error) -> Unreadable {
    let path = dir.join(name);
    // `lstat` needs no permission on the object itself, only on its directory.
    let st = std::fs::symlink_metadata(&path).ok();
    let (op, error) = match e {
        Error::Io { op, source, .. } => (*op, copy_error(source)),
        other => (
            "read",
            io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        ),
    };
    Unreadable {
        backend: backend.clone(),
        name: Some(name.to_owned()),
        location: path.display().to_string(),
        owner_uid: st.as_ref().map(std::os::unix::fs::MetadataExt::uid),
        mode: st
            .as_ref()
            .map(|m| std::os::unix::fs::MetadataExt::mode(m) & 0o7777),
        size: st.as_ref().map(std::fs::Metadata::len),
        op,
        error,
    }
}

/// An `io::Error` like `e` (which is not `Clone`): the same OS error, or kind and words.
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// The System V part of [`list`]: every segment of the kernel's table that has a key and can
/// hold a header. `SHM_STAT` of a segment this user may not read fails without saying which
/// segment it is; those are described from `/proc/sysvipc/shm` (which lists every segment to
/// everyone) and reported in [`Listing::skipped`], as a POSIX object that cannot be opened is.
fn list_sysv(listing: &mut Listing) -> Result<(), Error> {
    let backend = Backend::SysV;
    let max = sys::shm_max_index().map_err(|source| Error::Io {
        op: "list System V segments (shmctl IPC_INFO)",
        name: String::new(),
        backend: backend.clone(),
        source,
    })?;
    let mut seen = Vec::new();
    let mut denied = Vec::new();
    for index in 0..=max {
        let (id, ds) = match sys::shm_stat_index(index) {
            Ok(found) => found,
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                denied.push(index);
                continue;
            }
            Err(_) => continue, // an unused index
        };
        seen.push(id);
        let key = ds.shm_perm.__key;
        if key == libc::IPC_PRIVATE || ds.shm_segsz < 8 {
            continue; // liveness tokens and other private segments have no name
        }
        match read_sysv_segment(None, id, key, &ds, true) {
            Ok(Some(ch)) => listing.channels.push(ch),
            Ok(None) | Err(Error::NotFound { .. }) => {} // not ours, or removed meanwhile
            Err(e) => {
                let (op, error) = match &e {
                    Error::Io { op, source, .. } => (*op, copy_error(source)),
                    other => (
                        "read",
                        io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
                    ),
                };
                listing.skipped.push(Unreadable {
                    backend: backend.clone(),
                    name: None,
                    location: sysv_location(key, id),
                    owner_uid: Some(ds.shm_perm.uid),
                    mode: Some(u32::from(ds.shm_perm.mode) & 0o777),
                    size: Some(ds.shm_segsz as u64),
                    op,
                    error,
                });
            }
        }
    }
    if denied.is_empty() {
        return Ok(());
    }
    const STAT_OP: &str = "read the segment's status (shmctl SHM_STAT)";
    let table = match std::fs::read_to_string("/proc/sysvipc/shm") {
        Ok(t) => t,
        Err(e) => {
            // Without the table, nothing says which segments these are, nor whether they
            // are private ones (liveness tokens) that could not be channels: say what we know.
            for index in denied {
                listing.skipped.push(Unreadable {
                    backend: backend.clone(),
                    name: None,
                    location: format!(
                        "the System V segment at index {index} of the kernel's table (its key is \
                         unknown: /proc/sysvipc/shm cannot be read: {e})"
                    ),
                    owner_uid: None,
                    mode: None,
                    size: None,
                    op: STAT_OP,
                    error: io::Error::from_raw_os_error(libc::EACCES),
                });
            }
            return Ok(());
        }
    };
    for seg in table.lines().skip(1).filter_map(ProcSegment::parse) {
        if seen.contains(&seg.id) || seg.key == libc::IPC_PRIVATE || seg.size < HEADER_BYTES {
            continue; // read above; or private (a liveness token), or too small: no channel
        }
        // Asked again by id: only a segment this user may still not read is reported (one
        // made or opened up since the walk above is not, and neither is one removed).
        match sys::shm_stat(seg.id) {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                listing.skipped.push(Unreadable {
                    backend: backend.clone(),
                    name: None,
                    location: sysv_location(seg.key, seg.id),
                    owner_uid: Some(seg.uid),
                    mode: Some(seg.mode),
                    size: Some(seg.size),
                    op: STAT_OP,
                    error: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

fn sysv_location(key: libc::key_t, id: libc::c_int) -> String {
    format!("System V segment key {key:#010x}, id {id}")
}

/// One line of `/proc/sysvipc/shm`: `key shmid perms size cpid lpid nattch uid gid ...`.
struct ProcSegment {
    key: libc::key_t,
    id: libc::c_int,
    mode: u32,
    size: u64,
    uid: u32,
}

impl ProcSegment {
    fn parse(line: &str) -> Option<ProcSegment> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return None;
        }
        Some(ProcSegment {
            // The key is printed as a signed decimal `key_t`.
            key: f[0].parse().ok()?,
            id: f[1].parse().ok()?,
            mode: u32::from_str_radix(f[2], 8).ok()? & 0o777,
            size: f[3].parse().ok()?,
            uid: f[7].parse().ok()?,
        })
    }
}

/// Read channel `name` on `backend` at this moment.
///
/// # Errors
///
/// [`Error::InvalidName`] for a name no channel can have; [`Error::NotFound`] if nothing has
/// that name; [`Error::Incompatible`] if the object is not a shmchan channel (too small to be
/// one, a symbolic link, another program's data) or belongs to another channel name (a System
/// V key collision); [`Error::Io`] if it cannot be read (no permission, say). A channel of
/// another layout version is not an error: it comes back with [`State::Incompatible`].
///
/// ```
/// use shmchan::{inspect, Backend, Error};
/// let err = inspect::stat("shmchan-doc-no-such", &Backend::Posix).unwrap_err();
/// assert!(matches!(err, Error::NotFound { .. }));
/// ```
pub fn stat(name: &str, backend: &Backend) -> Result<Channel, Error> {
    region::validate_name(name)?;
    let found = match backend {
        Backend::Posix | Backend::File(_) => read_file_object(name, backend, false)?,
        Backend::SysV => {
            let key = crate::layout::sysv_key(name);
            let id = sys::shmget(key, 0, 0).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => not_found(name, backend),
                _ => io_error("look the key up (shmget)", name, backend, e),
            })?;
            let ds = sys::shm_stat(id).map_err(|e| match e.raw_os_error() {
                Some(libc::EINVAL | libc::EIDRM) => not_found(name, backend),
                _ => io_error(
                    "read the segment's status (shmctl IPC_STAT)",
                    name,
                    backend,
                    e,
                ),
            })?;
            read_sysv_segment(Some(name), id, key, &ds, false)?
        }
    };
    found.ok_or_else(|| Error::Incompatible {
        name: name.to_owned(),
        backend: backend.clone(),
        detail: "not a shmchan channel".into(),
    })
}

/// Remove the name `name` whatever holds it, even a channel whose endpoints are alive or an
/// object that is not a channel: what `shmchan rm --force` does. Taken under the channel's
/// gate, as [`remove`](crate::remove) is, so a name that meanwhile refers to a new channel is
/// never removed. Processes attached to the channel keep it (and its memory) and can go on
/// using it, but nobody can open it by name any more.
///
/// Returns what was broken, in words (`"sender pid 12, receiver pid 40 still attached and
/// alive"`, or what the object was if not a channel of this layout), or `None` if nothing was:
/// the channel was abandoned, closed or half-made, and [`remove`](crate::remove) would have
/// removed it too.
///
/// # Errors
///
/// As [`remove`](crate::remove), except that a live channel or a foreign object is removed
/// instead of refused.
///
/// ```
/// use shmchan::{inspect, spsc, Error, Options};
/// # let name = format!("doc-force-{}", std::process::id());
/// let opts = Options::new();
/// let tx = spsc::Sender::<u64>::create(&name, &opts)?;
/// let broke = inspect::remove_forced(&name, &opts)?;
/// assert!(broke.unwrap().contains("sender pid"));
/// assert!(matches!(inspect::stat(&name, opts.get_backend()), Err(Error::NotFound { .. })));
/// tx.send(1)?; // the sender keeps its channel
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn remove_forced(name: &str, opts: &Options) -> Result<Option<String>, Error> {
    crate::name::remove_forced(name, opts)
}

fn dir_of(backend: &Backend) -> std::path::PathBuf {
    match backend {
        Backend::File(dir) => dir.clone(),
        _ => "/dev/shm".into(),
    }
}

fn not_found(name: &str, backend: &Backend) -> Error {
    Error::NotFound {
        name: name.to_owned(),
        backend: backend.clone(),
    }
}

fn io_error(op: &'static str, name: &str, backend: &Backend, source: io::Error) -> Error {
    Error::Io {
        op,
        name: name.to_owned(),
        backend: backend.clone(),
        source,
    }
}

fn incompatible(name: &str, backend: &Backend, detail: String) -> Error {
    Error::Incompatible {
        name: name.to_owned(),
        backend: backend.clone(),
        detail,
    }
}

/// A header to read: a private copy (POSIX objects and files, read with `pread` from the
/// descriptor it keeps, which later reads use too), or a System V segment attached read-only.
enum View<'fd> {
    /// Read with `pread` into this process's memory: nobody else can change it, and an object
    /// that shrinks under us gives a short read, never a SIGBUS (as a load from a mapping of it
    /// would).
    Copy(Box<Header>, BorrowedFd<'fd>),
    /// A read-only attachment of at least `size_of::<Header>()` bytes (made by
    /// [`View::attached`], which checks it). A System V segment never changes size, and stays
    /// until its last detach even if removed, so loads from it cannot fault.
    SysV(Attachment),
}

impl View<'_> {
    /// A view of a System V attachment, if it is large enough to hold a header.
    fn attached(att: Attachment) -> Option<View<'static>> {
        (att.len() >= size_of::<Header>()).then_some(View::SysV(att))
    }

    fn header(&self) -> &Header {
        match self {
            View::Copy(h, _) => h,
            // SAFETY: the attachment is at least `size_of::<Header>()` bytes (checked in
            // `attached`, the only place a `View::SysV` is made) at a page-aligned address,
            // which satisfies `Header`'s 128-byte alignment; every field of `Header` is an
            // atomic integer, valid for any bits, and is only loaded, which atomics allow on
            // read-only memory (lock-free loads of at most 8 bytes). The attachment lives as
            // long as `self`, which the reference cannot outlive.
            View::SysV(att) => unsafe { &*att.base().cast::<Header>() },
        }
    }

    /// A copy of the `len` bytes at byte `offset` of the object (past the header); `Ok(None)`
    /// if the object does not hold them all (now). `offset` and `len` must be multiples of 8
    /// (System V: they are read as aligned 8-byte words).
    fn bytes(&self, offset: usize, len: usize) -> io::Result<Option<Vec<u8>>> {
        let Some(end) = offset.checked_add(len) else {
            return Ok(None);
        };
        if offset % 8 != 0 || len % 8 != 0 {
            return Ok(None);
        }
        match self {
            View::Copy(_, fd) => {
                let mut buf = vec![0u8; len];
                if pread_full(*fd, &mut buf, offset as u64)? < len {
                    return Ok(None);
                }
                Ok(Some(buf))
            }
            View::SysV(att) => {
                if end > att.len() {
                    return Ok(None);
                }
                let base = att.base().cast::<u8>();
                let mut buf = Vec::with_capacity(len);
                for at in (offset..end).step_by(8) {
                    // SAFETY: `at + 8 <= end <= att.len()` (checked above), so the word lies
                    // inside the attachment, which lives as long as `self`; the base is
                    // page-aligned and `at` a multiple of 8, so the word is 8-aligned. An
                    // atomic load of read-only shared memory that another process may write is
                    // sound, and any bits are a valid `u64`.
                    let word = unsafe { &*base.add(at).cast::<crate::sync::AtomicU64>() };
                    // Relaxed: a snapshot for people; no order between words is relied on
                    // (whatever they say is range-checked where it is read, and a cursor seen
                    // ahead of `tail` clamps to lag 0).
                    buf.extend_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
                }
                Ok(Some(buf))
            }
        }
    }

    /// The producer position (`tail`) now, read again (after something read later than the
    /// header); `Ok(None)` if the object is now shorter than a header.
    fn tail_now(&self) -> io::Result<Option<u64>> {
        match self {
            View::Copy(..) => Ok(self
                .bytes(offset_of!(Header, tail), 8)?
                .and_then(|b| u64_at(&b, 0))),
            // Relaxed: a snapshot for people, as everything inspection reads.
            View::SysV(_) => Ok(Some(self.header().tail.load(Ordering::Relaxed))),
        }
    }

    /// The descriptor a copy was read from (`None` for System V).
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            View::Copy(_, fd) => Some(*fd),
            View::SysV(_) => None,
        }
    }
}

/// Read from `offset` of `fd` into all of `buf`, or as much as the object has; returns how many
/// bytes were read (fewer than `buf.len()`: the object ends there now).
fn pread_full(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match sys::pread(fd, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A copy of the header of the object open on `fd`, read with `pread`: `Ok(None)` if the
/// object is now shorter than a header (another process shrank it since its `fstat`).
///
/// A `pread` of a region a peer writes is not one atomic snapshot: the kernel copies it in
/// order, and words written meanwhile may be read before or after the write. So a header found
/// published is read a second time (its identity is then complete: the creator wrote all of it
/// before it published), and the positions are read again after it, each an aligned 8-byte
/// word on its own, the consumer's first, so that `received <= sent` holds in the copy as it
/// does for a peer that loads them in that order (up to the consumer being ahead of the
/// shared `tail`, which `read_header` corrects).
fn copy_header(fd: BorrowedFd<'_>) -> io::Result<Option<Box<Header>>> {
    let mut copy = Box::new(std::mem::MaybeUninit::<Header>::uninit());
    // SAFETY: the pointer is to the box's own allocation of one `Header`, valid for writes;
    // zeroing every byte (padding included) makes all of them initialised.
    unsafe { copy.as_mut_ptr().write_bytes(0, 1) };
    let bytes = {
        // SAFETY: the allocation is `size_of::<Header>()` bytes, all of them initialised (zeroed
        // just above), so it may be seen as bytes; the slice is the only access to it while it
        // lives.
        unsafe {
            std::slice::from_raw_parts_mut(copy.as_mut_ptr().cast::<u8>(), size_of::<Header>())
        }
    };
    if pread_full(fd, bytes, 0)? < bytes.len() {
        return Ok(None);
    }
    let ready = u32::from_ne_bytes(
        bytes[offset_of!(Header, id) + offset_of!(Identity, init)..][..4]
            .try_into()
            .expect("4 bytes"),
    ) == crate::layout::READY;
    if ready && pread_full(fd, bytes, 0)? < bytes.len() {
        return Ok(None);
    }
    for at in [offset_of!(Header, head), offset_of!(Header, tail)] {
        let mut word = [0u8; 8];
        if pread_full(fd, &mut word, at as u64)? == 8 {
            bytes[at..at + 8].copy_from_slice(&word);
        }
    }
    // SAFETY: every byte is initialised (above), and every field of `Header` is an atomic
    // integer (or an array or line of them), for which any bits are a valid value.
    Ok(Some(unsafe { copy.assume_init() }))
}

/// How to ask whether the holder of an endpoint entry (or of the gate) lives.
enum Probe<'a> {
    /// POSIX and File: `F_OFD_GETLK` on a descriptor of the object.
    Ofd(BorrowedFd<'a>),
    /// System V: the token segments.
    SysV,
}

impl Probe<'_> {
    fn endpoint_alive(&self, i: usize, token: u32) -> bool {
        match self {
            Probe::Ofd(fd) => region::ofd_endpoint_alive(*fd, i),
            Probe::SysV => region::sysv_token_alive(token),
        }
    }

    fn gate_held(&self, hdr: &Header) -> bool {
        match self {
            Probe::Ofd(fd) => region::ofd_gate_held(*fd),
            // Relaxed: a look, nothing is read on the strength of it.
            Probe::SysV => region::sysv_gate_held(hdr.life.gate.load(Ordering::Relaxed)),
        }
    }
}

/// Read the POSIX object or file `name`. `Ok(None)`: not a shmchan channel, when `listing`
/// (a listing skips what is not ours; `stat` says what it found instead).
fn read_file_object(
    name: &str,
    backend: &Backend,
    listing: bool,
) -> Result<Option<Channel>, Error> {
    let dir = dir_of(backend);
    let path = dir.join(name);
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| incompatible(name, backend, "the path contains a NUL byte".into()))?;
    let owned: OwnedFd = sys::openat(
        None,
        &cpath,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => not_found(name, backend),
        Some(libc::ELOOP) => incompatible(
            name,
            backend,
            "it is a symbolic link, which shmchan does not follow".into(),
        ),
        _ => io_error("open (read-only)", name, backend, e),
    })?;
    let fd = owned.as_fd();
    let st = sys::fstat(fd).map_err(|e| io_error("fstat", name, backend, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return if listing {
            Ok(None)
        } else {
            Err(incompatible(
                name,
                backend,
                "it is not a regular file".into(),
            ))
        };
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let object = Object {
        location: path.display().to_string(),
        owner_uid: st.st_uid,
        mode: st.st_mode & 0o7777,
        size,
        sysv_id: None,
        sysv_key: None,
    };
    // The mark first, with `pread` (no mapping: another program's object may shrink under us
    // without harm; see `copy_header`).
    let mut first = [0u8; 8];
    let got = if size >= 8 {
        pread_full(fd, &mut first, 0).map_err(|e| io_error("pread", name, backend, e))?
    } else {
        0
    };
    if got < 8 && size >= 8 {
        return Ok(Some(resized(name, backend, object, fd, "a header")));
    }
    let magic = u64::from_le_bytes(first);
    if magic != MAGIC {
        if listing {
            return Ok(None);
        }
        return unmarked(name, backend, object, magic, size, |buf| {
            pread_full(fd, buf, 0)
        });
    }
    if size < HEADER_BYTES {
        return Ok(Some(truncated(name, backend, object)));
    }
    // The header, copied with `pread`: no mapping, so an object that another process shrinks
    // meanwhile gives a short read, never a SIGBUS.
    let Some(copy) = copy_header(fd).map_err(|e| io_error("pread", name, backend, e))? else {
        return Ok(Some(resized(name, backend, object, fd, "a header")));
    };
    let view = View::Copy(copy, fd);
    let probe = Probe::Ofd(fd);
    read_header(name, backend, object, &view, &probe).map(Some)
}

/// Read System V segment `id` (key `key`, status `ds`). `name`: the name asked for by `stat`
/// (`None` when listing, which skips what is not ours).
fn read_sysv_segment(
    name: Option<&str>,
    id: libc::c_int,
    key: libc::key_t,
    ds: &libc::shmid_ds,
    listing: bool,
) -> Result<Option<Channel>, Error> {
    let backend = Backend::SysV;
    let size = ds.shm_segsz as u64;
    let object = Object {
        location: format!("System V key {key:#010x}, id {id}"),
        owner_uid: ds.shm_perm.uid,
        mode: u32::from(ds.shm_perm.mode) & 0o777,
        size,
        sysv_id: Some(id),
        sysv_key: Some(key),
    };
    let label = name.map_or_else(|| format!("key {key:#010x}"), str::to_owned);
    if size < HEADER_BYTES && name.is_some() {
        // Too small to be a channel of this layout: look at the mark only to say what it is.
        let att = Attachment::read_only(id)
            .map_err(|e| io_error("attach read-only (shmat)", &label, &backend, e))?;
        let magic = if att.len() >= 8 {
            // SAFETY: the attachment is at least 8 bytes, page-aligned and alive while `att`
            // is; an atomic load of shared memory another process may write is sound.
            unsafe { &*att.base().cast::<crate::sync::AtomicU64>() }.load(Ordering::Relaxed)
        } else {
            0
        };
        if magic == MAGIC {
            return Ok(Some(truncated(&label, &backend, object)));
        }
        return Err(incompatible(
            &label,
            &backend,
            format!(
                "the segment is {size} bytes, smaller than a shmchan header ({HEADER_BYTES} \
                 bytes): not a shmchan channel"
            ),
        ));
    }
    if size < HEADER_BYTES {
        return Ok(None);
    }
    let att = Attachment::read_only(id).map_err(|e| match e.raw_os_error() {
        Some(libc::EINVAL | libc::EIDRM) => not_found(&label, &backend),
        _ => io_error("attach read-only (shmat)", &label, &backend, e),
    })?;
    let Some(view) = View::attached(att) else {
        return Ok(None);
    };
    let hdr = view.header();
    let magic = hdr.id.magic.load(Ordering::Relaxed);
    if magic != MAGIC {
        if listing {
            return Ok(None);
        }
        let zero = magic == 0 && !hdr.is_ready();
        return if zero {
            Ok(Some(half_made(&label, &backend, object, &Probe::SysV, hdr)))
        } else {
            Err(incompatible(
                &label,
                &backend,
                format!("not a shmchan channel (its first word is {magic:#018x})"),
            ))
        };
    }
    // The header's name must be the one whose key this is.
    let stored = hdr.name();
    let name = match (name, stored) {
        (Some(asked), Some(found)) if asked != found => {
            return Err(incompatible(
                asked,
                &backend,
                format!(
                    "the segment belongs to channel {found:?} (two names share one System V key)"
                ),
            ));
        }
        (Some(asked), _) => asked.to_owned(),
        (None, Some(found)) if crate::layout::sysv_key(&found) == key => found,
        (None, _) => label,
    };
    read_header(&name, &backend, object, &view, &Probe::SysV).map(Some)
}

/// What an object without shmchan's mark is, for `stat`: empty or zero where a header would
/// be is a creator's first steps (or one that died there): not ready; anything else is not a
/// channel. `read` reads the first bytes (as many as the buffer holds, or the object has).
fn unmarked(
    name: &str,
    backend: &Backend,
    object: Object,
    magic: u64,
    size: u64,
    read: impl Fn(&mut [u8]) -> io::Result<usize>,
) -> Result<Option<Channel>, Error> {
    if size == 0 {
        return Ok(Some(empty(name, backend, object)));
    }
    if size < HEADER_BYTES {
        return Err(incompatible(
            name,
            backend,
            format!(
                "the object is {size} bytes, smaller than a shmchan header ({HEADER_BYTES} \
                 bytes): not a shmchan channel"
            ),
        ));
    }
    let mut head = vec![0u8; size_of::<Header>()];
    let got = read(&mut head).map_err(|e| io_error("pread", name, backend, e))?;
    if got < head.len() {
        return Err(incompatible(
            name,
            backend,
            format!(
                "the object was {size} bytes and shrank to fewer than {HEADER_BYTES} while it \
                 was read (another process is resizing it): look again"
            ),
        ));
    }
    if head.iter().all(|&b| b == 0) {
        let mut ch = blank(name, backend, object, State::NotReady, 0);
        ch.problem = Some(
            "the header is all zeros: a creator that has not written it yet, or one that died \
             before (`shmchan rm` removes it if no creator is at work)"
                .into(),
        );
        return Ok(Some(ch));
    }
    Err(incompatible(
        name,
        backend,
        format!("not a shmchan channel (its first word is {magic:#018x})"),
    ))
}

/// An empty object: a creator's first step, or one that died there.
fn empty(name: &str, backend: &Backend, object: Object) -> Channel {
    let mut ch = blank(name, backend, object, State::NotReady, 0);
    ch.problem = Some(
        "the object is empty: a creator that has not sized it yet, or one that died before \
         (`shmchan rm` removes it if no creator is at work)"
            .into(),
    );
    ch
}

/// A marked object that was shorter when read than its `fstat` said: another process shrank
/// it meanwhile (a creator reusing it, or a hostile one), so that it no longer held `what`.
/// What it is now, from a new `fstat`.
fn resized(
    name: &str,
    backend: &Backend,
    object: Object,
    fd: BorrowedFd<'_>,
    what: &str,
) -> Channel {
    let before = object.size;
    let now = sys::fstat(fd).map_or(0, |st| u64::try_from(st.st_size).unwrap_or(0));
    let object = Object {
        size: now,
        ..object
    };
    if now == 0 {
        return empty(name, backend, object);
    }
    if now < HEADER_BYTES {
        return truncated(name, backend, object);
    }
    let mut ch = blank(name, backend, object, State::Incompatible, 0);
    ch.problem = Some(format!(
        "the object changed size while it was read ({before} bytes, then too short for \
         {what}, now {now}): another process is resizing it; look again"
    ));
    ch
}

/// A channel with nothing but its object known.
fn blank(name: &str, backend: &Backend, object: Object, state: State, version: u32) -> Channel {
    Channel {
        name: name.to_owned(),
        backend: backend.clone(),
        state,
        problem: None,
        version,
        object,
        ring: None,
        origin: None,
        endpoints: Vec::new(),
        topic: None,
        incarnation: None,
    }
}

fn truncated(name: &str, backend: &Backend, object: Object) -> Channel {
    let size = object.size;
    let mut ch = blank(name, backend, object, State::Incompatible, 0);
    ch.problem = Some(format!(
        "truncated: the object is {size} bytes, and a shmchan header needs {HEADER_BYTES}"
    ));
    ch
}

fn half_made(
    name: &str,
    backend: &Backend,
    object: Object,
    probe: &Probe<'_>,
    hdr: &Header,
) -> Channel {
    let mut ch = blank(name, backend, object, State::NotReady, 0);
    ch.problem = Some(if probe.gate_held(hdr) {
        "its creator is still writing the header".into()
    } else {
        "its creator died before it wrote the header (stale: `shmchan gc` or `shmchan rm` \
         removes it)"
            .into()
    });
    ch
}

/// Read a marked header: version, readiness, geometry, endpoints; validate all of it.
fn read_header(
    name: &str,
    backend: &Backend,
    object: Object,
    view: &View<'_>,
    probe: &Probe<'_>,
) -> Result<Channel, Error> {
    let hdr = view.header();
    let r = Ordering::Relaxed;
    let version = hdr.id.version.load(r);
    if version != VERSION {
        let mut ch = blank(name, backend, object, State::Incompatible, version);
        ch.problem = Some(if version > VERSION {
            format!(
                "layout version {version}, made by a newer shmchan (this one reads version \
                 {VERSION}): use that version's `shmchan`"
            )
        } else {
            format!(
                "layout version {version}, made by an older shmchan (this one reads version \
                 {VERSION}): its own processes can go on using it; `shmchan rm --force` removes \
                 the name"
            )
        });
        return Ok(ch);
    }
    if !hdr.is_ready() {
        let mut ch = half_made(name, backend, object, probe, hdr);
        ch.version = version;
        return Ok(ch);
    }
    // Published: the identity is complete (Acquire in `is_ready`). Validate it all.
    let corrupt = |object, why: String| {
        let mut ch = blank(name, backend, object, State::Incompatible, version);
        ch.problem = Some(format!("corrupt header: {why}"));
        Ok(ch)
    };
    match hdr.name() {
        Some(n) if n == name => {}
        Some(other) => {
            return corrupt(object, format!("it names channel {other:?}, not {name:?}"));
        }
        None => return corrupt(object, "the name stored in it is not valid".into()),
    }
    let id = &hdr.id;
    let kind_word = id.kind.load(r);
    let Some(kind) = LayoutKind::from_u32(kind_word) else {
        return corrupt(object, format!("unknown channel kind {kind_word}"));
    };
    let (size, align, hash) = (
        id.payload_size.load(r),
        id.payload_align.load(r),
        id.payload_type_hash.load(r),
    );
    let capacity = id.capacity.load(r);
    let (senders, receivers) = (id.max_senders.load(r), id.max_receivers.load(r));
    if capacity == 0 || !capacity.is_power_of_two() {
        return corrupt(object, format!("capacity {capacity} is not a power of two"));
    }
    if kind.is_bytes()
        && (size, align, hash) != {
            let b = Fingerprint::bytes();
            (b.size, b.align, b.type_hash)
        }
    {
        return corrupt(object, "a byte ring with a payload type".into());
    }
    if size > 1 << 40 || !align.is_power_of_two() {
        return corrupt(
            object,
            format!("payload of {size} bytes with alignment {align}"),
        );
    }
    let fp = Fingerprint {
        size,
        align,
        type_hash: hash,
        type_name: crate::layout::TypeName::Static("the payload"),
    };
    let geo = match Geometry::new(kind, &fp, capacity, senders, receivers) {
        Ok(g) if g.capacity == capacity => g,
        Ok(_) => return corrupt(object, format!("capacity {capacity} is not possible")),
        Err(e) => return corrupt(object, e),
    };
    if (kind == LayoutKind::Spsc || kind.is_bytes()) && (senders, receivers) != (1, 1) {
        return corrupt(
            object,
            format!("{senders} senders and {receivers} receivers in a one-to-one channel"),
        );
    }
    let stored = (
        id.slot_stride.load(r),
        id.slots_offset.load(r),
        id.region_len.load(r),
    );
    let computed = (
        geo.stride as u64,
        geo.slots_offset as u64,
        geo.region_len as u64,
    );
    if stored != computed {
        return corrupt(
            object,
            format!("stride, slots offset and length {stored:?}, expected {computed:?}"),
        );
    }
    if computed.2 > object.size {
        let why = format!(
            "it describes {} bytes, but the object is {} bytes",
            computed.2, object.size
        );
        return corrupt(object, why);
    }

    let n = (senders as usize + receivers as usize).min(MAX_ENDPOINTS);
    let mut endpoints = Vec::new();
    let mut any_alive = false;
    for (i, e) in hdr.endpoints[..n].iter().enumerate() {
        // SYNC POINT (endpoint): Acquire, as peers read entries (a look only).
        let w = e.load(Ordering::Acquire);
        let state = match endpoint::state_of(w) {
            0 => continue, // never claimed
            endpoint::ATTACHED => EndpointState::Attached,
            endpoint::DETACHED => EndpointState::Detached,
            _ => EndpointState::Dead,
        };
        let alive =
            state == EndpointState::Attached && probe.endpoint_alive(i, endpoint::token_of(w));
        any_alive |= alive;
        endpoints.push(Endpoint {
            index: i,
            role: if i < senders as usize {
                Role::Sender
            } else {
                Role::Receiver
            },
            // Relaxed: for people (see `Header::pids`).
            pid: hdr.pids[i].load(Ordering::Relaxed),
            attached: endpoint::generation_of(w),
            state,
            alive,
        });
    }

    // Positions: a snapshot; the fill level is clamped as the handles' `len()` is.
    let mut head = hdr.head.load(r);
    let mut tail = hdr.tail.load(r);
    // The shared `tail` is stored after the slot's stamp that publishes a message (and once at
    // the end of a batch), and the consumer reads stamps, not `tail`: it may take a message and
    // store `head` before its producer stores `tail`. Those messages were sent.
    let ahead = head.wrapping_sub(tail);
    if ahead != 0 && ahead <= capacity {
        tail = head;
    }
    if kind == LayoutKind::Spsc {
        // An SPSC producer stores `tail` only every `CHECKPOINT` messages (and when it leaves):
        // follow the stamps from it, as `len` does (`ring::spsc::published`).
        for _ in 0..crate::ring::CHECKPOINT {
            if tail.wrapping_sub(head) >= capacity {
                break;
            }
            let at = geo.slots_offset + (tail & (capacity - 1)) as usize * geo.stride;
            let stamp = view
                .bytes(at, 8)
                .map_err(|e| io_error("pread", name, backend, e))?
                .and_then(|b| u64_at(&b, 0));
            if stamp != Some(tail.wrapping_add(1)) {
                break;
            }
            tail = tail.wrapping_add(1);
        }
    }
    let mut topic = None;
    if kind == LayoutKind::Broadcast {
        let read = read_topic(view, receivers, capacity, &endpoints)
            .map_err(|e| io_error("pread", name, backend, e))?;
        let (found, now) = match read {
            TopicRead::Found(t, now) => (t, now),
            TopicRead::Corrupt(why) => return corrupt(object, why),
            TopicRead::Shrank => {
                return Ok(match view.fd() {
                    Some(fd) => {
                        resized(name, backend, object, fd, "its header and subscriber lines")
                    }
                    // A System V segment never shrinks: `bytes` checked the attachment.
                    None => corrupt(object, "its subscriber lines are cut short".into())?,
                });
            }
        };
        // No one consumer position: the slowest active subscriber's (see `Ring::received`).
        tail = now;
        head = tail.wrapping_sub(found.slowest().map_or(0, |s| s.lag));
        topic = Some(found);
    }
    let len = (tail.wrapping_sub(head) as i64).clamp(0, capacity as i64) as u64;
    let payload = if kind.is_bytes() {
        "bytes".to_owned()
    } else {
        hdr.type_name().unwrap_or_else(|| "?".into())
    };
    let created_ns = hdr.origin.created_ns.load(r);
    let origin = (created_ns != 0).then(|| Origin {
        created: UNIX_EPOCH + Duration::from_nanos(created_ns),
        creator_pid: hdr.origin.creator_pid.load(r),
        creator_uid: hdr.origin.creator_uid.load(r),
    });

    let closed = hdr.life.state.load(r) == CLOSED;
    let (state, problem) = if closed {
        (
            State::Abandoned,
            Some(
                "closed by its last endpoint, whose process could not remove the name \
                 (`shmchan gc` as its owner or root removes it)"
                    .to_owned(),
            ),
        )
    } else if any_alive {
        (State::Live, None)
    } else {
        (State::Abandoned, None)
    };
    Ok(Channel {
        name: name.to_owned(),
        backend: backend.clone(),
        state,
        problem,
        version,
        object,
        ring: Some(Ring {
            kind: Kind::from_layout(kind),
            payload,
            payload_size: size,
            payload_align: align,
            capacity,
            len,
            sent: tail,
            received: head,
            max_senders: senders,
            max_receivers: receivers,
        }),
        origin,
        endpoints,
        topic,
        incarnation: Some(hdr.life.incarnation.load(r)),
    })
}

/// What [`read_topic`] found.
enum TopicRead {
    /// The topic's lines, and the publisher's position read after them.
    Found(Topic, u64),
    /// They make no sense: why, in words.
    Corrupt(String),
    /// The object is now too short to hold them (another process shrank it).
    Shrank,
}

/// Read a broadcast topic's control line and its `receivers` subscriber lines (which follow
/// the header: the geometry, validated against the object's size, puts them before the
/// slots), then `tail` again, so that a cursor is usually read before the position its lag is
/// measured from (the loads are Relaxed: no order is guaranteed, and none is relied on). A
/// cursor seen ahead of `tail` (a subscriber that read a message before the publisher moved
/// `tail` past it, a load out of order, or a hostile cursor) has lag 0, by the clamp.
///
/// `endpoints` are the places some endpoint claimed (read from the header); those past the
/// publisher's are the subscribers'.
fn read_topic(
    view: &View<'_>,
    receivers: u32,
    capacity: u64,
    endpoints: &[Endpoint],
) -> io::Result<TopicRead> {
    let lines = 1 + receivers as usize; // the control line, then one per subscriber
    let Some(bytes) = view.bytes(size_of::<Header>(), LINE * lines)? else {
        return Ok(TopicRead::Shrank);
    };
    let Some(tail) = view.tail_now()? else {
        return Ok(TopicRead::Shrank);
    };
    let cut = || TopicRead::Corrupt("its subscriber lines are cut short".into());
    let (Some(mode), Some(evict_ms)) = (
        u32_at(&bytes, offset_of!(Control, mode)),
        u32_at(&bytes, offset_of!(Control, evict_after_ms)),
    ) else {
        return Ok(cut());
    };
    let overflow = match mode {
        OVERWRITE => Overflow::Overwrite,
        BLOCK => Overflow::Block {
            evict_after: (evict_ms != 0).then(|| Duration::from_millis(u64::from(evict_ms))),
        },
        other => {
            return Ok(TopicRead::Corrupt(format!(
                "overflow mode {other} (a topic's is {OVERWRITE}, overwrite, or {BLOCK}, block)"
            )));
        }
    };
    let mut subscribers = Vec::new();
    for e in endpoints {
        // Place `p` (1 to `receivers`) has line `p` (line 0 is the control line).
        if e.index == 0 || e.index >= lines {
            continue; // the publisher's place
        }
        let at = LINE * e.index;
        let (Some(cursor), Some(lagged), Some(evicted)) = (
            u64_at(&bytes, at + offset_of!(Sub, cursor)),
            u64_at(&bytes, at + offset_of!(Sub, lagged)),
            u64_at(&bytes, at + offset_of!(Sub, evicted)),
        ) else {
            return Ok(cut());
        };
        subscribers.push(Subscriber {
            index: e.index,
            pid: e.pid,
            attached: e.attached,
            state: e.state,
            alive: e.alive,
            cursor,
            // Wrapping distance, clamped: a hostile cursor or `tail` cannot overflow it.
            lag: (tail.wrapping_sub(cursor) as i64).clamp(0, capacity as i64) as u64,
            lagged,
            // The publisher writes the generation of the occupant it evicted: this occupant
            // is evicted if that is its place's generation now.
            evicted: evicted != 0 && evicted == u64::from(e.attached),
        });
    }
    Ok(TopicRead::Found(
        Topic {
            overflow,
            subscribers,
        },
        tail,
    ))
}

/// The native-endian `u32` at byte `at` of `b`, if `b` holds it.
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let mut w = [0u8; 4];
    w.copy_from_slice(b.get(at..at.checked_add(4)?)?);
    Some(u32::from_ne_bytes(w))
}

/// The native-endian `u64` at byte `at` of `b`, if `b` holds it.
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let mut w = [0u8; 8];
    w.copy_from_slice(b.get(at..at.checked_add(8)?)?);
    Some(u64::from_ne_bytes(w))
}
