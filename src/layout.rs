//! The header at offset 0 of every region, and the geometry derived from it.
//!
//! Everything here is `#[repr(C)]` with fixed-width fields and a fixed 128-byte line size, so
//! processes built for different targets agree on every offset (`crossbeam_utils::CachePadded`
//! is not used in shared memory because its alignment differs between targets). All fields are
//! atomics from [`crate::sync`]: zeroed memory is a valid header, initialisation writes it in
//! place, and under loom the same code runs against loom's atomics.
//!
//! The identity fields are written by the creator before it stores [`READY`] into `init` with
//! Release; an opener reads `init` with Acquire, then copies and validates the identity once
//! ([`Header::validate`]) and never reads it again. The peer is not trusted: nothing read from
//! the header is used as an offset or length without being checked against what this process
//! computed itself.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// `b"SHMCHAN"` and a format byte, little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMCHAN\x01");
/// Bumped whenever the header or slot layout changes (2: liveness from kernel-held locks,
/// the channel's life word instead of a reference count, the doorbell's sleeper flag; byte
/// rings for frames and pipes. 3: the [`Origin`] line at the end of the header (payload type
/// name, creation time, creator), so slots and byte rings start 128 bytes later; every other
/// offset is unchanged, so `shmchan::inspect` still reads the identity of a version-2 channel
/// to report it as incompatible. 4: endpoint places are reused: an entry word carries the
/// place's generation instead of the occupant's pid, which moved to [`Header::pids`] after the
/// origin line; the table has 128 places (MPMC channels use at most 64, a broadcast topic its
/// publisher and up to 127 subscribers); MPMC stamps carry the owner's generation; a creator
/// marks the object with `magic` and `version` before anything else, so that an object is only
/// ever taken for a half-made channel when it is empty or carries that mark; kind 5, broadcast).
/// 5: the same as 4 once its table had grown to 128 places; the first builds of version 4 had
/// 64, so a version-4 header does not say which table follows it, and a build of one would
/// misread the other's channels. (No field changed from the last version-4 build.) 6: a
/// subscriber line's `ready` word (a subscriber counts once its start is fixed). 7: the data
/// doorbell's `departures` count (senders no longer read the receivers' entries per message).
/// 8: a doorbell's sleeper flag and departure count are one word, [`Doorbell::state`] (a
/// send's fast path checks both with one load and one compare).
pub(crate) const VERSION: u32 = 8;
/// What the first bytes of an object say it is. Every creator writes `magic` and `version`
/// (the first [`MARK_BYTES`] bytes of the header) before anything else of the channel, so an
/// object that is not empty and does not start with them is not shmchan's, and nothing is
/// ever written to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// The object has no bytes: made by a creator that has not marked it yet (or died first).
    Empty,
    /// All of the mark's bytes are zero: a System V segment a creator made a moment ago and has
    /// not marked yet, or not a channel at all.
    Zeros,
    /// Marked by a creator of this layout version.
    Ours,
    /// Marked by a creator of another layout version.
    OtherVersion(u32),
    /// Something else, in words.
    Foreign(String),
}

/// Bytes of the mark: `magic` (8) and `version` (4).
pub(crate) const MARK_BYTES: usize = 12;

impl Mark {
    /// The mark a creator writes.
    pub(crate) fn bytes() -> [u8; MARK_BYTES] {
        let mut b = [0u8; MARK_BYTES];
        b[..8].copy_from_slice(&MAGIC.to_le_bytes());
        b[8..].copy_from_slice(&VERSION.to_le_bytes());
        b
    }

    /// What the first bytes of an object (as many as it has, up to [`MARK_BYTES`]) say.
    pub(crate) fn of(prefix: &[u8]) -> Mark {
        if prefix.is_empty() {
            return Mark::Empty;
        }
        if prefix.iter().all(|&b| b == 0) {
            return Mark::Zeros;
        }
        if prefix.len() < MARK_BYTES || prefix[..8] != MAGIC.to_le_bytes() {
            let shown: Vec<String> = prefix.iter().take(8).map(|b| format!("{b:02x}")).collect();
            return Mark::Foreign(format!(
                "its first bytes are {}, where a shmchan channel starts with \"SHMCHAN\\x01\"",
                shown.join(" ")
            ));
        }
        let version = u32::from_le_bytes(prefix[8..12].try_into().expect("4 bytes"));
        if version == VERSION {
            Mark::Ours
        } else {
            Mark::OtherVersion(version)
        }
    }

    /// The mark of a mapped header (a System V segment, which is never smaller than one).
    pub(crate) fn of_header(hdr: &Header) -> Mark {
        let mut b = [0u8; MARK_BYTES];
        // Relaxed: the mark is written once, before the gate is taken; a reader racing the
        // creator's stores sees zeros (then waits) or the mark.
        b[..8].copy_from_slice(&hdr.id.magic.load(Ordering::Relaxed).to_le_bytes());
        b[8..].copy_from_slice(&hdr.id.version.load(Ordering::Relaxed).to_le_bytes());
        Mark::of(&b)
    }

    /// Write the mark into a mapped header (a System V creator, into the segment it just made).
    pub(crate) fn write(hdr: &Header) {
        // Relaxed: as for the other identity fields, published by `publish`; an opener waits
        // for the mark before it takes the gate.
        hdr.id.magic.store(MAGIC, Ordering::Relaxed);
        hdr.id.version.store(VERSION, Ordering::Relaxed);
    }
}

/// Value of `init` once the header is complete.
pub(crate) const READY: u32 = 0x5245_4459; // "REDY"
/// Longest channel name, in bytes (the header keeps a copy of it).
pub(crate) const MAX_NAME: usize = 200;
const NAME_WORDS: usize = 32; // 256 bytes
/// Size of the endpoint table; each channel uses `max_senders + max_receivers` entries of it.
pub(crate) const MAX_ENDPOINTS: usize = 128;
/// Most places an MPMC channel may have: its slot stamps name their holder in 6 bits.
pub(crate) const MAX_MPMC_ENDPOINTS: usize = 64;
/// Most subscribers a broadcast topic may have (its publisher takes one more place).
pub(crate) const MAX_SUBSCRIBERS: usize = MAX_ENDPOINTS - 1;
/// Cache-line size assumed for padding (two 64-byte lines, against adjacent-line prefetch).
pub(crate) const LINE: usize = 128;

/// A value alone on its own 128-byte line.
#[repr(C, align(128))]
pub(crate) struct Line<T>(pub(crate) T);

impl<T> core::ops::Deref for Line<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Which algorithm a region was created for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    Spsc = 1,
    Mpmc = 2,
    /// Variable-size frames in a byte ring (`ring/frame.rs`), one sender and one receiver.
    Frame = 3,
    /// A byte stream over the same byte ring.
    Pipe = 4,
    /// One publisher, any number of subscribers, each reading every message
    /// (`ring/broadcast.rs`).
    Broadcast = 5,
}

impl Kind {
    pub(crate) fn from_u32(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::Spsc),
            2 => Some(Kind::Mpmc),
            3 => Some(Kind::Frame),
            4 => Some(Kind::Pipe),
            5 => Some(Kind::Broadcast),
            _ => None,
        }
    }
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Spsc => "SPSC",
            Kind::Mpmc => "MPMC",
            Kind::Frame => "frame",
            Kind::Pipe => "pipe",
            Kind::Broadcast => "broadcast",
        }
    }
    /// "an SPSC", "a frame".
    pub(crate) fn article(self) -> &'static str {
        if matches!(self, Kind::Spsc | Kind::Mpmc) {
            "an"
        } else {
            "a"
        }
    }
    /// Is this a byte ring (capacity in bytes, no payload type)?
    pub(crate) fn is_bytes(self) -> bool {
        matches!(self, Kind::Frame | Kind::Pipe)
    }
}

/// What a region's payload type looks like: size, alignment and a hash of its type name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub(crate) size: u64,
    pub(crate) align: u64,
    pub(crate) type_hash: u64,
    pub(crate) type_name: TypeName,
}

impl Fingerprint {
    /// The "payload" of a byte ring: bytes, 8-aligned records.
    pub(crate) fn bytes() -> Fingerprint {
        const NAME: &str = "bytes";
        Fingerprint {
            size: 1,
            align: 8,
            type_hash: fnv1a64(NAME.as_bytes()),
            type_name: TypeName::Static(NAME),
        }
    }

    /// The name of a broadcast frame topic's payload.
    const FRAMES: &'static str = "frames";

    /// The payload of a broadcast frame topic whose frames are at most `max_frame` bytes: a
    /// length word, then the bytes, rounded up to whole words.
    pub(crate) fn frames(max_frame: usize) -> Fingerprint {
        Fingerprint {
            size: 8 + (max_frame as u64).next_multiple_of(8),
            align: 8,
            type_hash: fnv1a64(Self::FRAMES.as_bytes()),
            type_name: TypeName::Static(Self::FRAMES),
        }
    }

    /// A broadcast frame topic's payload, of whatever largest frame its creator chose (for
    /// subscribers, and for a publisher taking a topic over without asking for a size).
    pub(crate) fn any_frames() -> Fingerprint {
        Fingerprint {
            size: 0,
            ..Fingerprint::frames(0)
        }
    }

    /// Is this a frame topic's payload ([`frames`](Self::frames) or
    /// [`any_frames`](Self::any_frames))?
    pub(crate) fn is_frames(&self) -> bool {
        self.type_hash == fnv1a64(Self::FRAMES.as_bytes())
            && self.type_name.as_str() == Self::FRAMES
    }

    /// The payload `T`, named `name` instead of by its Rust type name when the options give
    /// one (`Options::type_name`): how two programs in different languages agree on a type.
    pub(crate) fn of_named<T>(name: Option<&str>) -> Result<Fingerprint, String> {
        match name {
            None => Ok(Fingerprint::of::<T>()),
            Some(name) => Fingerprint::element(size_of::<T>(), align_of::<T>(), name),
        }
    }

    /// A payload described at run time (`untyped`, or a Rust type renamed): `size` bytes,
    /// aligned to `align`, named `name`, hashed as written (no module path is removed: a name
    /// with `::` is refused, so that the name stored in the header is the one hashed).
    pub(crate) fn element(size: usize, align: usize, name: &str) -> Result<Fingerprint, String> {
        if name.is_empty() || name.len() > TYPE_NAME_BYTES || name.contains("::") {
            return Err(format!(
                "type name {name:?}: a name is 1 to {TYPE_NAME_BYTES} bytes, without `::` \
                 (the name both sides give, not a Rust path)"
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(format!("type name {name:?} holds control characters"));
        }
        if size == 0 || size > MAX_ELEMENT {
            return Err(format!(
                "payload type {name:?}: a size of {size} bytes (1 to {MAX_ELEMENT} are supported)"
            ));
        }
        if name == "frames" || name == "bytes" {
            return Err(format!(
                "type name {name:?} is reserved for frame topics and byte rings"
            ));
        }
        if !align.is_power_of_two() || size % align != 0 {
            return Err(format!(
                "payload type {name:?}: size {size} and alignment {align} (the alignment must \
                 be a power of two that divides the size, as for any Rust or C type)"
            ));
        }
        Ok(Fingerprint {
            size: size as u64,
            align: align as u64,
            type_hash: fnv1a64(name.as_bytes()),
            type_name: TypeName::inline(name),
        })
    }

    pub(crate) fn of<T>() -> Fingerprint {
        let type_name = std::any::type_name::<T>();
        Fingerprint {
            size: size_of::<T>() as u64,
            align: align_of::<T>() as u64,
            type_hash: fnv1a64(short_type_name(type_name).as_bytes()),
            type_name: TypeName::Static(type_name),
        }
    }
}

/// The largest payload a run-time element may have (1 GiB: far above any message type, and
/// small enough that no slot arithmetic overflows; `Geometry::new` bounds a ring's total size).
const MAX_ELEMENT: usize = 1 << 30;

/// A payload type's name: a Rust type's (`std::any::type_name`, static), or one given at run
/// time (`Options::type_name`, `untyped::Element`), kept inline so that a [`Fingerprint`] stays
/// `Copy` without a registry of names (which a process taking names from its input would grow
/// without bound, and whose lock a `fork` could leave held in the child).
#[derive(Clone, Copy)]
pub(crate) enum TypeName {
    Static(&'static str),
    Inline {
        bytes: [u8; TYPE_NAME_BYTES],
        len: u8,
    },
}

impl TypeName {
    /// `name`, of at most [`TYPE_NAME_BYTES`] bytes (checked by the caller).
    fn inline(name: &str) -> TypeName {
        let mut bytes = [0u8; TYPE_NAME_BYTES];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        TypeName::Inline {
            bytes,
            len: name.len() as u8,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            TypeName::Static(s) => s,
            // Copied whole from a `&str` in `inline`: valid UTF-8.
            TypeName::Inline { bytes, len } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or("?")
            }
        }
    }
}

impl PartialEq for TypeName {
    fn eq(&self, other: &TypeName) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TypeName {}

impl std::fmt::Debug for TypeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for TypeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type name without module paths: `sender::msg::Tick<u64>` becomes `Tick<u64>`. Two
/// programs that each compile the same message struct (in crates or modules of other names)
/// then agree, while `u64` and `i64`, or `Tick` and `Quote`, still differ.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut ident = String::new();
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            ident.clear(); // a path segment: drop it
        } else {
            out.push_str(&ident);
            ident.clear();
            out.push(c);
        }
    }
    out.push_str(&ident);
    out
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The System V key for a channel name: a hash, never `IPC_PRIVATE` (0).
pub(crate) fn sysv_key(name: &str) -> i32 {
    let h = fnv1a64(format!("shmchan:{name}").as_bytes());
    let k = ((h >> 32) ^ h) as u32 & 0x7fff_ffff;
    if k == 0 { 1 } else { k as i32 }
}

/// Written once by the creator, then read once by each opener.
#[repr(C)]
pub(crate) struct Identity {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) kind: AtomicU32,
    pub(crate) payload_size: AtomicU64,
    pub(crate) payload_align: AtomicU64,
    pub(crate) payload_type_hash: AtomicU64,
    pub(crate) capacity: AtomicU64,
    pub(crate) slot_stride: AtomicU64,
    pub(crate) slots_offset: AtomicU64,
    pub(crate) region_len: AtomicU64,
    pub(crate) max_senders: AtomicU32,
    pub(crate) max_receivers: AtomicU32,
    pub(crate) name_len: AtomicU32,
    /// 0 while the creator initialises the header, [`READY`] once it is complete.
    /// SYNC POINT (ready): stored with Release last by [`Header::publish`]; loaded with
    /// Acquire by [`Header::is_ready`] before any other identity field is read.
    pub(crate) init: AtomicU32,
    pub(crate) name: [AtomicU64; NAME_WORDS],
}

/// A futex word, and what a notifier needs to know to decide whether to ring it (see
/// `wait.rs`).
#[repr(C)]
pub(crate) struct Doorbell {
    /// Bumped by a waker before `FUTEX_WAKE`; sleepers wait for it to change.
    pub(crate) seq: AtomicU32,
    pub(crate) _reserved: AtomicU32,
    /// Two fields in one word (version 8), so that a sender checks both with one load and one
    /// compare (`Chan::send_clear`); each changes only by a read-modify-write of its bits:
    /// - the high half ([`SLEEPERS`]), the sleeper flag: nonzero when a thread (in any
    ///   process) may be asleep on `seq`; set ([`SLEEPER`]) by each sleeper before its last
    ///   check, cleared by the notifier that wakes them all. A flag, not a count, so that a
    ///   sleeper killed in its sleep leaves nothing behind but one spurious wake. Written only
    ///   on the sleep path and by departures (rare), so a notifier reading it finds it in its
    ///   cache as long as nobody sleeps and nobody leaves.
    /// - the low half (data bell only; version 7 as a word of its own), the departure count:
    ///   how many endpoints, of either role, have left the channel, detaching or found dead;
    ///   wrapping. Bumped by 1 (Release) after the entry changed; a sender compares it (a 32-bit
    ///   compare) with the count it last saw on every send, and reads the receivers' entries
    ///   only when it changed (`Chan::receivers_left`), so a receiver that dropped its handle is
    ///   seen at once without a walk of the table per message. Its wrap, once in 2^32
    ///   departures, carries into the flag: one spurious wake.
    pub(crate) state: AtomicU64,
}

/// [`Doorbell::state`]'s sleeper flag (its high half).
pub(crate) const SLEEPERS: u64 = !0xffff_ffff;
/// What a sleeper sets in [`Doorbell::state`].
pub(crate) const SLEEPER: u64 = 1 << 32;

/// [`Life::state`] of a channel that can be joined.
pub(crate) const OPEN: u32 = 0;
/// [`Life::state`] of a channel that was closed (its last endpoint left); it is never joined
/// again, and its name is removed (or, if that was not permitted, the object is used anew by
/// the next `create` of its name).
pub(crate) const CLOSED: u32 = 1;

/// Whether the channel can still be joined, which incarnation of a channel the object holds,
/// and the System V gate. Never zeroed when an object is made a channel anew (`Region::zero`).
#[repr(C)]
pub(crate) struct Life {
    /// [`OPEN`] or [`CLOSED`]. Written only by a holder of the gate (`region/lock.rs`).
    pub(crate) state: AtomicU32,
    pub(crate) _reserved: AtomicU32,
    /// System V only: the gate lock, 0 when free, else the holder's token id + 1.
    pub(crate) gate: AtomicU64,
    /// Set by the creator (under the gate) to a value unique to this channel: an object a
    /// closed channel left behind can be made a new channel in place (another user's, whose
    /// name may not be removed), and a handle of the old channel must not close the new one.
    pub(crate) incarnation: AtomicU64,
}

/// Bytes of [`Origin::type_name`].
pub(crate) const TYPE_NAME_BYTES: usize = 104;

/// Who made the channel, when, and for which payload type: written once by the creator before
/// it publishes the header, read only by `shmchan::inspect` (for people; nothing is decided on
/// it, and every value is validated before it is shown).
#[repr(C)]
pub(crate) struct Origin {
    /// Creation time, nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
    pub(crate) created_ns: AtomicU64,
    /// The creator's pid, as its own pid namespace numbers it.
    pub(crate) creator_pid: AtomicU32,
    /// The creator's real user id.
    pub(crate) creator_uid: AtomicU32,
    /// Bytes of `type_name` in use (at most [`TYPE_NAME_BYTES`]).
    pub(crate) type_name_len: AtomicU32,
    pub(crate) _reserved: AtomicU32,
    /// The payload type's name without module paths (`Tick<u64>`; `bytes` for frames and
    /// pipes), UTF-8, cut at a character boundary to fit.
    pub(crate) type_name: [AtomicU64; TYPE_NAME_BYTES / 8],
}

/// The header at offset 0 of every region.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) id: Line<Identity>,
    /// Whether the channel can be joined; the System V gate.
    pub(crate) life: Line<Life>,
    /// The endpoint table (see `endpoint.rs` for the word format): senders first, then
    /// receivers.
    pub(crate) endpoints: Line<[AtomicU64; MAX_ENDPOINTS]>,
    /// Producer position (SPSC: written only by the sender). Monotonic, never masked here.
    pub(crate) tail: Line<AtomicU64>,
    /// Consumer position (SPSC: written only by the receiver). Monotonic, never masked here.
    pub(crate) head: Line<AtomicU64>,
    /// Receivers sleep here waiting for data; senders ring it.
    pub(crate) data_bell: Line<Doorbell>,
    /// Senders sleep here waiting for room; receivers ring it.
    pub(crate) space_bell: Line<Doorbell>,
    /// Who made the channel, when, for which type (version 3).
    pub(crate) origin: Line<Origin>,
    /// The pid of each place's current (or last) occupant, as its own pid namespace numbers
    /// it: for people reading the table (`shmchan stat`); nothing is decided on it. Written by
    /// the occupant right after it claims the place, so a reader may briefly see the previous
    /// occupant's pid beside the new generation.
    pub(crate) pids: Line<[AtomicU32; MAX_ENDPOINTS]>,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::offset_of;
    assert!(size_of::<Identity>() == 88 + NAME_WORDS * 8);
    assert!(offset_of!(Header, id) == 0);
    assert!(offset_of!(Header, life) == 384);
    assert!(offset_of!(Life, gate) == 8);
    assert!(offset_of!(Life, incarnation) == 16);
    assert!(size_of::<Doorbell>() == 16);
    assert!(offset_of!(Doorbell, state) == 8);
    assert!(offset_of!(Header, endpoints) == 512);
    assert!(offset_of!(Header, tail) == 1536);
    assert!(offset_of!(Header, head) == 1664);
    assert!(offset_of!(Header, data_bell) == 1792);
    assert!(offset_of!(Header, space_bell) == 1920);
    assert!(size_of::<Origin>() == 128);
    assert!(offset_of!(Header, origin) == 2048);
    assert!(offset_of!(Origin, type_name) == 24);
    assert!(offset_of!(Header, pids) == 2176);
    assert!(size_of::<Header>() == 2688);
    assert!(align_of::<Header>() == LINE);
};

/// A broadcast topic's control line, right after the header (`ring/broadcast.rs`).
#[repr(C)]
pub(crate) struct Control {
    /// [`OVERWRITE`] or [`BLOCK`]: written once by the creator before it publishes the
    /// header, checked by every opener.
    pub(crate) mode: AtomicU32,
    /// Block mode: how long (milliseconds) a live subscriber that does not move may hold the
    /// publisher back before it is evicted; 0: never. Written once, as `mode`.
    pub(crate) evict_after_ms: AtomicU32,
    /// Set (to 1) by a subscriber that joined, so that a Block-mode publisher scans the table
    /// again before its next message; cleared by the publisher when it scans.
    pub(crate) rescan: AtomicU32,
    pub(crate) _reserved: AtomicU32,
    /// Block mode: scans of the subscribers the publisher has completed (written by it only);
    /// a joiner counts itself protected once two more have (`ring/broadcast.rs`).
    pub(crate) epoch: AtomicU64,
}

/// Overflow mode of a broadcast topic: the publisher never waits; a subscriber left a ring
/// behind is told how many it lost.
pub(crate) const OVERWRITE: u32 = 1;
/// Overflow mode of a broadcast topic: the publisher waits for the slowest live subscriber.
pub(crate) const BLOCK: u32 = 2;

/// One broadcast subscriber's line (its own, so that subscribers never share one), at
/// `Control` + `LINE * (1 + i)` for subscriber place `1 + i`.
#[repr(C)]
pub(crate) struct Sub {
    /// The next position this subscriber reads: written only by it (with Release, so that a
    /// Block-mode publisher that reads it with Acquire overwrites only slots it is done with).
    pub(crate) cursor: AtomicU64,
    /// Messages it was told it lost (the sum of its `Lagged(n)`), for people.
    pub(crate) lagged: AtomicU64,
    /// The generation of the place's occupant that the publisher evicted (0: none). Keyed by
    /// generation, so that a new occupant of the place is not taken for the evicted one.
    pub(crate) evicted: AtomicU64,
    /// The generation of the place's occupant once it is ready: its start position fixed and,
    /// in Block mode, its join asked for (0: none yet). `subscriber_count` counts only these,
    /// so a publisher that waited for a subscriber sends nothing that subscriber will not see.
    /// Written last by the subscriber as it opens, with Release.
    pub(crate) ready: AtomicU64,
}

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<Control>() <= LINE);
    assert!(size_of::<Sub>() <= LINE);
};

#[cfg(loom)]
impl Control {
    /// A zeroed control line as a value (loom: the heap block holds one).
    pub(crate) fn zeroed() -> Control {
        Control {
            mode: AtomicU32::new(0),
            evict_after_ms: AtomicU32::new(0),
            rescan: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
            epoch: AtomicU64::new(0),
        }
    }
}

#[cfg(loom)]
impl Sub {
    /// A zeroed subscriber line as a value (loom).
    pub(crate) fn zeroed() -> Sub {
        Sub {
            cursor: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            ready: AtomicU64::new(0),
        }
    }
}

/// A typed slot's shape for a payload of `size` bytes aligned to `align`: the payload's
/// offset (after the slot's 8-byte stamp, aligned for the payload) and the stride (the slot
/// rounded up so that every slot is aligned for both); `None` if that overflows. The one rule
/// for [`Geometry::new`] and for the typed hot paths, which apply it at compile time
/// (`ring::Slots::stamp_of`).
pub(crate) const fn slot_shape(size: usize, align: usize) -> Option<(usize, usize)> {
    let a = if align > 8 { align } else { 8 };
    let payload_offset = 8usize.next_multiple_of(a);
    match size.checked_add(payload_offset) {
        Some(end) => match end.checked_next_multiple_of(a) {
            Some(stride) => Some((payload_offset, stride)),
            None => None,
        },
        None => None,
    }
}

/// The validated shape of a region, kept in process-private memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) kind: Kind,
    /// Ring capacity in slots, a power of two.
    pub(crate) capacity: u64,
    /// Bytes from one slot to the next.
    pub(crate) stride: usize,
    /// Offset of the payload inside a slot (slots start with their 8-byte stamp).
    pub(crate) payload_offset: usize,
    /// Offset of slot 0 from the start of the region.
    pub(crate) slots_offset: usize,
    /// Bytes the region must have.
    pub(crate) region_len: usize,
    pub(crate) max_senders: u32,
    pub(crate) max_receivers: u32,
}

impl Geometry {
    /// The layout for a new channel, or why there can be none.
    pub(crate) fn new(
        kind: Kind,
        fp: &Fingerprint,
        capacity: u64,
        max_senders: u32,
        max_receivers: u32,
    ) -> Result<Geometry, String> {
        if kind.is_bytes() {
            return Geometry::bytes(kind, capacity);
        }
        if capacity == 0 {
            return Err("capacity must be at least 1".into());
        }
        if capacity > crate::Options::MAX_CAPACITY as u64 {
            return Err(format!(
                "capacity {capacity} is above the maximum of {}",
                crate::Options::MAX_CAPACITY
            ));
        }
        let capacity = capacity.next_power_of_two();
        if fp.align > 4096 {
            return Err(format!(
                "payload type {} needs {}-byte alignment; at most 4096 is supported",
                fp.type_name, fp.align
            ));
        }
        let places = max_senders as usize + max_receivers as usize;
        if kind == Kind::Broadcast {
            if max_senders != 1 || max_receivers == 0 || places > MAX_ENDPOINTS {
                return Err(format!(
                    "{max_receivers} subscribers: a topic takes 1 to {MAX_SUBSCRIBERS}"
                ));
            }
        } else if max_senders == 0 || max_receivers == 0 || places > MAX_MPMC_ENDPOINTS {
            return Err(format!(
                "{max_senders} senders and {max_receivers} receivers: each must be at least 1 \
                 and together at most {MAX_MPMC_ENDPOINTS}"
            ));
        }
        // Every slot is an 8-byte stamp, then the payload (aligned for it): the reader polls
        // the stamp, so the signal and the data travel in one cache line.
        let (payload_offset, stride) = usize::try_from(fp.size)
            .ok()
            .and_then(|size| slot_shape(size, fp.align as usize))
            .ok_or_else(|| format!("a payload of {} bytes does not fit in memory", fp.size))?;
        let align = (fp.align as usize).max(LINE);
        // A broadcast topic's control line and one line per subscriber come first.
        let extra = if kind == Kind::Broadcast {
            LINE * (1 + max_receivers as usize)
        } else {
            0
        };
        let slots_offset = (size_of::<Header>() + extra).next_multiple_of(align);
        let page = 4096;
        let region_len = (stride as u64)
            .checked_mul(capacity)
            .and_then(|b| b.checked_add(slots_offset as u64))
            .and_then(|b| b.checked_next_multiple_of(page))
            .filter(|&b| b <= isize::MAX as u64 / 2)
            .ok_or_else(|| format!("{capacity} slots of {} bytes do not fit in memory", fp.size))?;
        Ok(Geometry {
            kind,
            capacity,
            stride,
            payload_offset,
            slots_offset,
            region_len: region_len as usize,
            max_senders,
            max_receivers,
        })
    }

    /// The smallest byte ring: one 16-byte record header and 16 bytes of payload.
    pub(crate) const MIN_BYTES: u64 = 32;

    /// The layout of a byte ring of `capacity` bytes (rounded up to a power of two, at least
    /// [`MIN_BYTES`](Self::MIN_BYTES)): the ring follows the header; one sender, one receiver.
    fn bytes(kind: Kind, capacity: u64) -> Result<Geometry, String> {
        if capacity == 0 {
            return Err("capacity must be at least 1 byte".into());
        }
        if capacity > crate::Options::MAX_CAPACITY as u64 {
            return Err(format!(
                "capacity {capacity} bytes is above the maximum of {}",
                crate::Options::MAX_CAPACITY
            ));
        }
        let capacity = capacity.next_power_of_two().max(Self::MIN_BYTES);
        let slots_offset = size_of::<Header>();
        let region_len = (slots_offset as u64 + capacity).next_multiple_of(4096);
        Ok(Geometry {
            kind,
            capacity,
            stride: 1,
            payload_offset: 0,
            slots_offset,
            region_len: region_len as usize,
            max_senders: 1,
            max_receivers: 1,
        })
    }

    /// Words (8 bytes) of a slot's payload, padding included (typed kinds).
    pub(crate) fn payload_words(&self) -> usize {
        (self.stride - self.payload_offset) / 8
    }

    /// Index range of the sender entries in the endpoint table.
    pub(crate) fn senders(&self) -> core::ops::Range<usize> {
        0..self.max_senders as usize
    }

    /// Index range of the receiver entries in the endpoint table.
    pub(crate) fn receivers(&self) -> core::ops::Range<usize> {
        let s = self.max_senders as usize;
        s..s + self.max_receivers as usize
    }
}

impl Header {
    /// A zeroed header as a value (loom builds headers this way; production headers are zeroed
    /// mapped memory).
    #[cfg(loom)]
    pub(crate) fn zeroed() -> Header {
        fn a64() -> AtomicU64 {
            AtomicU64::new(0)
        }
        fn a32() -> AtomicU32 {
            AtomicU32::new(0)
        }
        fn bell() -> Line<Doorbell> {
            Line(Doorbell {
                seq: a32(),
                _reserved: a32(),
                state: a64(),
            })
        }
        Header {
            id: Line(Identity {
                magic: a64(),
                version: a32(),
                kind: a32(),
                payload_size: a64(),
                payload_align: a64(),
                payload_type_hash: a64(),
                capacity: a64(),
                slot_stride: a64(),
                slots_offset: a64(),
                region_len: a64(),
                max_senders: a32(),
                max_receivers: a32(),
                name_len: a32(),
                init: a32(),
                name: std::array::from_fn(|_| a64()),
            }),
            life: Line(Life {
                state: a32(),
                _reserved: a32(),
                gate: a64(),
                incarnation: a64(),
            }),
            endpoints: Line(std::array::from_fn(|_| a64())),
            tail: Line(a64()),
            head: Line(a64()),
            data_bell: bell(),
            space_bell: bell(),
            origin: Line(Origin {
                created_ns: a64(),
                creator_pid: a32(),
                creator_uid: a32(),
                type_name_len: a32(),
                _reserved: a32(),
                type_name: std::array::from_fn(|_| a64()),
            }),
            pids: Line(std::array::from_fn(|_| a32())),
        }
    }

    /// Write the identity of a new channel into a zeroed header. Nothing else may use the
    /// header until [`publish`](Self::publish). Relaxed stores: `publish`'s Release orders
    /// them before any opener's reads.
    pub(crate) fn write_identity(&self, name: &str, fp: &Fingerprint, geo: &Geometry) {
        let id = &self.id;
        let r = Ordering::Relaxed;
        id.magic.store(MAGIC, r);
        id.version.store(VERSION, r);
        id.kind.store(geo.kind as u32, r);
        id.payload_size.store(fp.size, r);
        id.payload_align.store(fp.align, r);
        id.payload_type_hash.store(fp.type_hash, r);
        id.capacity.store(geo.capacity, r);
        id.slot_stride.store(geo.stride as u64, r);
        id.slots_offset.store(geo.slots_offset as u64, r);
        id.region_len.store(geo.region_len as u64, r);
        id.max_senders.store(geo.max_senders, r);
        id.max_receivers.store(geo.max_receivers, r);
        let bytes = name.as_bytes();
        id.name_len.store(bytes.len() as u32, r);
        store_bytes(&id.name, bytes);
    }

    /// Write who made the channel, when, and for which payload type (into a zeroed header,
    /// before [`publish`](Self::publish), whose Release orders these Relaxed stores).
    pub(crate) fn write_origin(&self, fp: &Fingerprint, created_ns: u64, pid: u32, uid: u32) {
        let o = &self.origin;
        let r = Ordering::Relaxed;
        o.created_ns.store(created_ns, r);
        o.creator_pid.store(pid, r);
        o.creator_uid.store(uid, r);
        let full = short_type_name(fp.type_name.as_str());
        let mut cut = full.len().min(TYPE_NAME_BYTES);
        while !full.is_char_boundary(cut) {
            cut -= 1;
        }
        let bytes = &full.as_bytes()[..cut];
        o.type_name_len.store(bytes.len() as u32, r);
        store_bytes(&o.type_name, bytes);
    }

    /// Mark the header complete. SYNC POINT (ready): Release, pairs with the Acquire load in
    /// [`is_ready`](Self::is_ready); every store made before it is visible to an opener that
    /// sees `READY`.
    pub(crate) fn publish(&self) {
        self.id.init.store(READY, Ordering::Release);
    }

    /// Has the creator published the header? SYNC POINT (ready): Acquire, pairs with
    /// [`publish`](Self::publish).
    pub(crate) fn is_ready(&self) -> bool {
        self.id.init.load(Ordering::Acquire) == READY
    }

    /// Copy the identity out once and check it against what this handle expects and against
    /// the real size of the mapping. Returns the geometry to keep, or what is wrong in words.
    pub(crate) fn validate(
        &self,
        name: &str,
        kind: Kind,
        fp: &Fingerprint,
        mapped_len: usize,
    ) -> Result<Geometry, String> {
        let id = &self.id;
        let r = Ordering::Relaxed; // ordered by `is_ready`'s Acquire
        let magic = id.magic.load(r);
        if magic != MAGIC {
            return Err(format!(
                "not a shmchan region (magic {magic:#018x}, expected {MAGIC:#018x})"
            ));
        }
        let version = id.version.load(r);
        if version != VERSION {
            return Err(format!(
                "layout version {version}, but this build of shmchan reads version {VERSION}"
            ));
        }
        let found_name = self.name();
        if found_name.as_deref() != Some(name) {
            return Err(match found_name {
                Some(other) => format!(
                    "the region belongs to channel {other:?} (two names share one System V key)"
                ),
                None => "the name stored in the header is corrupt".into(),
            });
        }
        let found_kind = id.kind.load(r);
        match Kind::from_u32(found_kind) {
            Some(k) if k == kind => {}
            Some(k) => {
                return Err(format!(
                    "it is {} {} channel, opened as {}",
                    k.article(),
                    k.as_str(),
                    kind.as_str()
                ));
            }
            None => return Err(format!("unknown channel kind {found_kind}")),
        }
        let (size, align, hash) = (
            id.payload_size.load(r),
            id.payload_align.load(r),
            id.payload_type_hash.load(r),
        );
        // A frame topic's subscriber takes the largest frame its creator chose (a size that
        // does not fit the rest of the header is caught with the geometry below).
        let chosen;
        let fp = if fp.is_frames() && hash == fp.type_hash && align == fp.align {
            if size < 16 || size % 8 != 0 {
                return Err(format!(
                    "corrupt header: a frame topic's slot payload of {size} bytes"
                ));
            }
            if fp.size != 0 && fp.size != size {
                return Err(format!(
                    "the topic takes frames of up to {} bytes; this handle asked for {}",
                    size - 8,
                    fp.size - 8
                ));
            }
            chosen = Fingerprint { size, ..*fp };
            &chosen
        } else {
            fp
        };
        if (size, align, hash) != (fp.size, fp.align, fp.type_hash) {
            // The creator's name for its type (the origin line), for the message only: the
            // check is on size, alignment and hash.
            let theirs = self
                .type_name()
                .map_or_else(String::new, |n| format!("`{}`, ", n.escape_debug()));
            return Err(format!(
                "payload type mismatch: the channel carries {theirs}{size}-byte values \
                 (alignment {align}, type hash {hash:#018x}); this handle is for `{}` ({} \
                 bytes, alignment {}, type hash {:#018x})",
                fp.type_name, fp.size, fp.align, fp.type_hash
            ));
        }
        let capacity = id.capacity.load(r);
        if capacity == 0 || !capacity.is_power_of_two() {
            return Err(format!(
                "corrupt header: capacity {capacity} is not a power of two"
            ));
        }
        let (senders, receivers) = (id.max_senders.load(r), id.max_receivers.load(r));
        if (kind == Kind::Spsc || kind.is_bytes()) && (senders, receivers) != (1, 1) {
            return Err(format!(
                "corrupt header: {} channel with {senders} senders and {receivers} receivers",
                kind.as_str()
            ));
        }
        let geo = Geometry::new(kind, fp, capacity, senders, receivers)
            .map_err(|e| format!("corrupt header: {e}"))?;
        let stored = (
            id.slot_stride.load(r),
            id.slots_offset.load(r),
            id.region_len.load(r),
        );
        if stored
            != (
                geo.stride as u64,
                geo.slots_offset as u64,
                geo.region_len as u64,
            )
        {
            return Err(format!(
                "corrupt header: slot stride, slots offset and length {stored:?} do not match \
                 the {:?} computed for {capacity} slots",
                (geo.stride, geo.slots_offset, geo.region_len)
            ));
        }
        if geo.region_len > mapped_len {
            return Err(format!(
                "the region is {mapped_len} bytes, but its header describes {} bytes",
                geo.region_len
            ));
        }
        Ok(geo)
    }

    /// Entries of the endpoint table in use, as the header says (unvalidated: clamp it).
    pub(crate) fn endpoint_count(&self) -> usize {
        let r = Ordering::Relaxed;
        self.id.max_senders.load(r) as usize + self.id.max_receivers.load(r) as usize
    }

    /// The channel name stored in the header, if it is well-formed.
    pub(crate) fn name(&self) -> Option<String> {
        let len = self.id.name_len.load(Ordering::Relaxed) as usize;
        load_string(&self.id.name, len.min(MAX_NAME + 1), MAX_NAME)
    }

    /// The payload type's name stored by the creator (version 3), if it is well-formed.
    pub(crate) fn type_name(&self) -> Option<String> {
        let len = self.origin.type_name_len.load(Ordering::Relaxed) as usize;
        load_string(&self.origin.type_name, len, TYPE_NAME_BYTES)
    }
}

/// Store `bytes` little-endian into `words` (as many as it takes; the rest is left as is).
fn store_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (word, chunk) in words.iter().zip(bytes.chunks(8)) {
        let mut buf = [0u8; 8];
        buf[..chunk.len()].copy_from_slice(chunk);
        word.store(u64::from_le_bytes(buf), Ordering::Relaxed);
    }
}

/// The first `len` bytes of `words` as UTF-8, if `len <= max` and they are valid.
fn load_string(words: &[AtomicU64], len: usize, max: usize) -> Option<String> {
    if len > max || len > words.len() * 8 {
        return None;
    }
    let mut bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
        .collect();
    bytes.truncate(len);
    String::from_utf8(bytes).ok()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn geometry_rounds_capacity_and_pages() {
        let fp = Fingerprint::of::<u64>();
        let g = Geometry::new(Kind::Spsc, &fp, 1000, 1, 1).unwrap();
        assert_eq!(g.capacity, 1024);
        assert_eq!((g.payload_offset, g.stride), (8, 16), "stamp, then payload");
        assert_eq!(g.slots_offset, size_of::<Header>());
        assert_eq!(g.region_len % 4096, 0);
        assert!(g.region_len >= g.slots_offset + 16 * 1024);
        let g = Geometry::new(Kind::Spsc, &Fingerprint::of::<[u8; 3]>(), 4, 1, 1).unwrap();
        assert_eq!((g.payload_offset, g.stride), (8, 16));
        assert!(Geometry::new(Kind::Spsc, &fp, 0, 1, 1).is_err());
        assert!(Geometry::new(Kind::Spsc, &fp, u64::MAX, 1, 1).is_err());
    }

    #[test]
    fn sysv_keys_are_never_private_and_differ_by_name() {
        assert_ne!(sysv_key("a"), 0);
        assert_ne!(sysv_key("a"), sysv_key("b"));
        assert!(sysv_key("ticks") > 0);
    }

    #[test]
    fn type_names_lose_their_module_paths() {
        assert_eq!(short_type_name("sender::line::Line"), "Line");
        assert_eq!(
            short_type_name("a::Tick<alloc::vec::Vec<b::c::D>, [u8; 4]>"),
            "Tick<Vec<D>, [u8; 4]>"
        );
        assert_eq!(short_type_name("u64"), "u64");
    }

    #[test]
    fn fingerprints_tell_types_apart() {
        assert_ne!(Fingerprint::of::<u64>(), Fingerprint::of::<i64>());
        assert_ne!(Fingerprint::of::<u64>(), Fingerprint::of::<[u8; 8]>());
        assert_eq!(Fingerprint::of::<u64>(), Fingerprint::of::<u64>());
    }
}
