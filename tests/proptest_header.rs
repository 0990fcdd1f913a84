//! Hostile shared memory, as property tests: a second mapping of a real channel's region
//! writes random bytes over its header and its first slots (the identity, the life word and
//! System V gate, the endpoint table, both positions, both doorbells, slot stamps and
//! payloads), with values both random and chosen to hurt (0, 1, `u32::MAX`, `u64::MAX`,
//! `i64::MIN`, powers of two and their neighbours, the magic, `READY`, words that look like a
//! live endpoint, the old value plus or minus a little, one header word copied over another),
//! and then a random sequence of operations goes through the public API only: open and create
//! of either role and kind, `try_send`, `send_timeout`, `try_send_slice`, `try_recv`,
//! `recv_timeout`, `try_recv_slice`, `recv_slice_timeout`, `len`, `is_full`,
//! `is_disconnected`, `is_connected`, `wait_for_peer`, clones, drops, `shmchan::remove`, and
//! more scribbling in between. Every case runs over a fresh channel, SPSC and MPMC, on POSIX,
//! System V and a mapped file.
//!
//! What is asserted is only what a hostile peer must never achieve: a panic (in debug or
//! release builds; proptest then shrinks the case to a minimal one), an out-of-bounds access
//! or any other crash (which kills this test binary, on purpose: nothing runs in a forked
//! child; a signal handler first prints the case the crashing thread was running), or a hang
//! (a watchdog aborts the binary, printing the case, if one case runs for more than
//! [`CASE_LIMIT`]). Every result may be `Ok` or `Err`, every value received may be odd, apart
//! from two sanity checks: `len() <= capacity()`, and a batch call never reports more values
//! than the batch had. Nothing here calls a blocking operation without a timeout: a corrupted
//! ring may look empty (or full) for ever, legitimately.
//!
//! Not among the mutations: changing the size of the object under a live mapping
//! (`ftruncate`), a documented limitation (the next access faults with SIGBUS).
//!
//! `header_word_sweep_*` are the deterministic regressions: every 4-byte word of the header
//! of a live channel (SPSC on POSIX and on System V, MPMC on POSIX) set to `u32::MAX`, then
//! to `0x8000_0000`, then open, send, receive (single and batch, `try_` and `_timeout`),
//! query, `remove` and `create` over it, and drop everything.
//!
//! Each case removes what it made whatever happens (a mutation can make the last handle's
//! drop unable to remove the name, for example a copied endpoint word that looks alive), and
//! unmaps its raw mapping. `PROPTEST_CASES=n` runs `n` cases per property instead of the
//! default [`CASES`].

mod common;

use std::io::Write as _;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{Cleanup, Msg, TempDir, unique_name};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use shmchan::{Backend, Options, mpmc, spsc};

/// Cases per property when `PROPTEST_CASES` is not set (six properties run in parallel).
const CASES: u32 = 256;
/// How long one case may run before the watchdog calls it a hang. A legitimate case stays far
/// below: each wait in it is a few milliseconds, except that a dropped handle waits up to 1 s
/// for a System V gate that a live token seems to hold.
const CASE_LIMIT: Duration = Duration::from_secs(30);
/// `open_timeout` for every handle opened or created here: a corrupted `init` word makes a
/// region look not yet ready, and `open` waits that long.
const OPEN_TIMEOUT: Duration = Duration::from_millis(20);
/// Most handles a case keeps at once.
const MAX_HANDLES: usize = 8;

// The header layout (`src/layout.rs`, where these offsets are asserted).
const SLOTS: usize = 2688; // slot 0, for `Msg` (size 16, alignment 8), after the 2688-byte header
const STRIDE: usize = 24; // an 8-byte stamp, then the 16-byte payload
const MAX_CAPACITY: usize = 16;
const TAIL: usize = 1536;
const HEAD: usize = 1664;
/// The first byte of every header field: identity (magic, version, kind, payload size,
/// alignment and type hash, capacity, stride, slots offset, length, max senders and receivers,
/// name length, init, name), life (state, reserved, System V gate), endpoint entries (the
/// first three, the last MPMC sender and first MPMC receiver, the last of the table), tail,
/// head, and both doorbells (seq, the reserved word, the state word: version 8).
const FIELDS: &[usize] = &[
    0, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 76, 80, 84, 88, 96, 336, 384, 388, 392, 512, 520,
    528, 760, 768, 1016, 1528, 1536, 1664, 1792, 1796, 1800, 1920, 1924, 1928, 2176, 2684,
];
const MAGIC: u64 = u64::from_le_bytes(*b"SHMCHAN\x01");
const READY: u64 = 0x5245_4459;
/// Values that break naive arithmetic: zero, one, the edges of every width, sign bits, the
/// edge of the MPMC stamps' 56-bit positions, a capacity above the maximum, and what the
/// header holds when all is well.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    u32::MAX as u64,
    1 << 32,
    (1 << 56) - 1,
    1 << 56,
    i64::MAX as u64,
    i64::MIN as u64,
    u64::MAX - 1,
    u64::MAX,
    MAGIC,
    READY,
    (1 << 30) + 1,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Spsc,
    Mpmc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Posix,
    SysV,
    File,
}

/// One change to the region's bytes, through the raw mapping.
#[derive(Clone, Debug)]
enum Write {
    /// Store the low `width` bytes of `value` (little-endian) at `off`.
    Set {
        off: usize,
        width: usize,
        value: u64,
    },
    /// Add `delta` to the (unaligned, little-endian) `u64` at `off`: a plausible wrong value.
    Add { off: usize, delta: i64 },
    /// Copy the 8 bytes at `from` over those at `to` (a live endpoint word into another entry,
    /// a position into the other position, a stamp into another slot).
    Copy { from: usize, to: usize },
    /// Set `head` to `head` and `tail` to `head + delta`: positions anywhere (near the wrap of
    /// a `u64`, say), consistent with each other or not.
    Positions { head: u64, delta: i64 },
    /// Make the stamp of the slot of position `head + k` (the `head` the header holds now)
    /// look plausible: published for SPSC (`p + 1`), or an MPMC stamp of that position in
    /// `state` held by endpoint `owner` (free, being written, full, being read; the owner
    /// alive, gone or out of the table).
    Stamp {
        k: u64,
        mpmc: bool,
        owner: u64,
        state: u64,
    },
}

/// One step of a case. `Index` picks among the handles alive at that moment.
#[derive(Clone, Debug)]
enum Op {
    Open(Kind, Role),
    Create(Kind, Role),
    TrySend(Index, u8),
    SendTimeout(Index, u8),
    TrySendSlice(Index, u8),
    TryRecv(Index, u8),
    RecvTimeout(Index, u8),
    TryRecvSlice(Index, u8),
    RecvSliceTimeout(Index, u8, u8),
    Query(Index),
    WaitForPeer(Index),
    Clone(Index),
    Drop(Index),
    Remove,
    Scribble(Vec<Write>),
}

/// A whole case: the channel, its traffic before the damage, the damage, what follows.
#[derive(Clone, Debug)]
struct Case {
    creator: Role,
    capacity: usize,
    /// Open the other side before the damage.
    peer: bool,
    /// Messages sent, then received, before the damage.
    sent: u8,
    received: u8,
    writes: Vec<Write>,
    ops: Vec<Op>,
}

fn kind_strategy(kind: Kind) -> impl Strategy<Value = Kind> {
    // Mostly the channel's own kind; sometimes the other, which must be refused cleanly.
    prop_oneof![
        4 => Just(kind),
        1 => Just(match kind {
            Kind::Spsc => Kind::Mpmc,
            Kind::Mpmc => Kind::Spsc,
        }),
    ]
}

fn role_strategy() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Sender), Just(Role::Receiver)]
}

fn offset_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => select(FIELDS),
        2 => (0usize..128).prop_map(|i| 512 + 8 * i),     // any endpoint entry
        2 => (0usize..SLOTS / 4).prop_map(|w| 4 * w),     // any aligned header word
        1 => 0usize..SLOTS,                               // any header byte
        3 => (0usize..MAX_CAPACITY).prop_map(|i| SLOTS + STRIDE * i), // a slot's stamp
        1 => SLOTS..SLOTS + STRIDE * MAX_CAPACITY + 64,   // any byte of the first slots
    ]
}

fn value_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => select(INTERESTING),
        1 => (0u32..64).prop_map(|k| 1u64 << k),
        1 => (1u32..64).prop_map(|k| (1u64 << k) - 1),
        2 => 0u64..64,
        // An endpoint word of a small generation, in each state (free, attached, detached,
        // dead), with a small token.
        1 => (0u64..4, 0u64..4, 0u64..4)
            .prop_map(|(generation, token, state)| (generation << 34) | (token << 2) | state),
        2 => any::<u64>(),
    ]
}

fn write_strategy() -> impl Strategy<Value = Write> {
    prop_oneof![
        6 => (offset_strategy(), select(&[1usize, 2, 4, 4, 8, 8, 8][..]), value_strategy())
            .prop_map(|(off, width, value)| Write::Set { off, width, value }),
        2 => (offset_strategy(), -4i64..=4).prop_map(|(off, delta)| Write::Add { off, delta }),
        1 => (offset_strategy(), offset_strategy()).prop_map(|(from, to)| Write::Copy { from, to }),
        1 => (value_strategy(), -20i64..=20)
            .prop_map(|(head, delta)| Write::Positions { head, delta }),
        2 => (0u64..20, any::<bool>(), 0u64..64, 0u64..4)
            .prop_map(|(k, mpmc, owner, state)| Write::Stamp { k, mpmc, owner, state }),
    ]
}

fn op_strategy(kind: Kind) -> impl Strategy<Value = Op> {
    let ms = 0u8..4;
    prop_oneof![
        3 => (kind_strategy(kind), role_strategy()).prop_map(|(k, r)| Op::Open(k, r)),
        2 => (kind_strategy(kind), role_strategy()).prop_map(|(k, r)| Op::Create(k, r)),
        4 => (any::<Index>(), 1u8..6).prop_map(|(h, n)| Op::TrySend(h, n)),
        2 => (any::<Index>(), ms.clone()).prop_map(|(h, t)| Op::SendTimeout(h, t)),
        2 => (any::<Index>(), 1u8..20).prop_map(|(h, n)| Op::TrySendSlice(h, n)),
        4 => (any::<Index>(), 1u8..6).prop_map(|(h, n)| Op::TryRecv(h, n)),
        2 => (any::<Index>(), ms.clone()).prop_map(|(h, t)| Op::RecvTimeout(h, t)),
        2 => (any::<Index>(), 1u8..20).prop_map(|(h, n)| Op::TryRecvSlice(h, n)),
        1 => (any::<Index>(), 1u8..20, ms).prop_map(|(h, n, t)| Op::RecvSliceTimeout(h, n, t)),
        3 => any::<Index>().prop_map(Op::Query),
        1 => any::<Index>().prop_map(Op::WaitForPeer),
        1 => any::<Index>().prop_map(Op::Clone),
        2 => any::<Index>().prop_map(Op::Drop),
        2 => Just(Op::Remove),
        2 => prop::collection::vec(write_strategy(), 1..4).prop_map(Op::Scribble),
    ]
}

fn case_strategy(kind: Kind) -> impl Strategy<Value = Case> {
    (
        role_strategy(),
        select(&[1usize, 2, 4, 8, 16][..]),
        any::<bool>(),
        0u8..20,
        0u8..20,
        prop::collection::vec(write_strategy(), 1..12),
        prop::collection::vec(op_strategy(kind), 1..24),
    )
        .prop_map(
            |(creator, capacity, peer, sent, received, writes, ops)| Case {
                creator,
                capacity,
                peer,
                sent,
                received,
                writes,
                ops,
            },
        )
}

/// A second, independent read-write mapping of a region (as `tests/corruption.rs` makes it),
/// unmapped (or detached) when dropped.
struct RawMap {
    ptr: *mut u8,
    len: usize,
    /// The channel's real capacity (whatever its header says now).
    capacity: u64,
    _keep: Option<memmap2::MmapMut>,
    sysv: bool,
}

impl RawMap {
    fn new(name: &str, backend: &Backend, capacity: usize) -> RawMap {
        let capacity = capacity.next_power_of_two() as u64;
        let path = match backend {
            Backend::Posix => std::path::Path::new("/dev/shm").join(name),
            Backend::File(dir) => dir.join(name),
            Backend::SysV => {
                // SAFETY: look the segment up, read its size, attach it read-write; each call
                // is checked before its result is used.
                unsafe {
                    let id = libc::shmget(Backend::sysv_key(name), 0, 0);
                    assert!(id >= 0, "no System V segment for {name}");
                    let mut ds: libc::shmid_ds = std::mem::zeroed();
                    assert_eq!(libc::shmctl(id, libc::IPC_STAT, &mut ds), 0);
                    let p = libc::shmat(id, std::ptr::null(), 0);
                    assert_ne!(p as isize, -1, "shmat failed");
                    return RawMap {
                        ptr: p.cast(),
                        len: ds.shm_segsz,
                        capacity,
                        _keep: None,
                        sysv: true,
                    };
                }
            }
        };
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        // SAFETY: a shared mapping of a file we opened; we only read and write plain bytes in
        // it, never beyond its length, and never change its size.
        let mut m = unsafe { memmap2::MmapMut::map_mut(&f) }.unwrap();
        RawMap {
            ptr: m.as_mut_ptr(),
            len: m.len(),
            capacity,
            _keep: Some(m),
            sysv: false,
        }
    }

    /// The `n <= 8` bytes at `off` as a little-endian number (0 beyond the end).
    fn read(&self, off: usize, n: usize) -> u64 {
        let mut b = [0u8; 8];
        if off.checked_add(n).is_some_and(|end| end <= self.len) {
            for (i, byte) in b.iter_mut().enumerate().take(n) {
                // SAFETY: `off + i < off + n <= len`: inside our own mapping; a volatile byte
                // read is always aligned.
                *byte = unsafe { self.ptr.add(off + i).read_volatile() };
            }
        }
        u64::from_le_bytes(b)
    }

    /// Store the low `n <= 8` bytes of `v` at `off` (nothing beyond the end).
    fn write(&self, off: usize, n: usize, v: u64) {
        if off.checked_add(n).is_some_and(|end| end <= self.len) {
            for (i, byte) in v.to_le_bytes().iter().enumerate().take(n) {
                // SAFETY: as in `read`; plain bytes, which any reader accepts.
                unsafe { self.ptr.add(off + i).write_volatile(*byte) };
            }
        }
        // Our later calls into the library must see the bytes (they reach them through
        // another address, which the compiler cannot know is the same memory).
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }

    fn apply(&self, w: &Write) {
        match *w {
            Write::Set { off, width, value } => self.write(off, width, value),
            Write::Add { off, delta } => {
                self.write(off, 8, self.read(off, 8).wrapping_add_signed(delta))
            }
            Write::Copy { from, to } => self.write(to, 8, self.read(from, 8)),
            Write::Positions { head, delta } => {
                self.write(HEAD, 8, head);
                self.write(TAIL, 8, head.wrapping_add_signed(delta));
            }
            Write::Stamp {
                k,
                mpmc,
                owner,
                state,
            } => {
                let pos = self.read(HEAD, 8).wrapping_add(k);
                let slot = (pos & (self.capacity - 1)) as usize;
                let stamp = if mpmc {
                    ((pos & ((1 << 56) - 1)) << 8) | (owner << 2) | state
                } else {
                    pos.wrapping_add(1)
                };
                self.write(SLOTS + STRIDE * slot, 8, stamp);
            }
        }
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        if self.sysv {
            // SAFETY: detach the segment we attached in `new`; nothing uses `ptr` after this.
            unsafe { libc::shmdt(self.ptr.cast()) };
        }
    }
}

thread_local! {
    /// What the operations of this thread's property returned: name -> (ok, err). Printed
    /// at the end, to show the cases reach past the first error.
    static TALLY: std::cell::RefCell<std::collections::BTreeMap<&'static str, (u64, u64)>> =
        Default::default();
}

fn tally(what: &'static str, ok: bool) {
    TALLY.with(|t| {
        let mut t = t.borrow_mut();
        let e = t.entry(what).or_default();
        if ok {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    });
}

fn tally_report() -> String {
    TALLY.with(|t| {
        let t = std::mem::take(&mut *t.borrow_mut());
        t.iter()
            .map(|(k, (ok, err))| format!("{k} {ok}/{err}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// A handle of any kind and role.
enum Handle {
    SpscTx(spsc::Sender<Msg>),
    SpscRx(spsc::Receiver<Msg>),
    MpmcTx(mpmc::Sender<Msg>),
    MpmcRx(mpmc::Receiver<Msg>),
}

/// Run `$e` with `$h` bound to whichever handle `$x` is.
macro_rules! each {
    ($x:expr, $h:ident => $e:expr) => {
        match $x {
            Handle::SpscTx($h) => $e,
            Handle::SpscRx($h) => $e,
            Handle::MpmcTx($h) => $e,
            Handle::MpmcRx($h) => $e,
        }
    };
}

impl Handle {
    fn open(kind: Kind, role: Role, name: &str, opts: &Options) -> Result<Handle, shmchan::Error> {
        Ok(match (kind, role) {
            (Kind::Spsc, Role::Sender) => Handle::SpscTx(spsc::Sender::open(name, opts)?),
            (Kind::Spsc, Role::Receiver) => Handle::SpscRx(spsc::Receiver::open(name, opts)?),
            (Kind::Mpmc, Role::Sender) => Handle::MpmcTx(mpmc::Sender::open(name, opts)?),
            (Kind::Mpmc, Role::Receiver) => Handle::MpmcRx(mpmc::Receiver::open(name, opts)?),
        })
    }

    fn create(
        kind: Kind,
        role: Role,
        name: &str,
        opts: &Options,
    ) -> Result<Handle, shmchan::Error> {
        Ok(match (kind, role) {
            (Kind::Spsc, Role::Sender) => Handle::SpscTx(spsc::Sender::create(name, opts)?),
            (Kind::Spsc, Role::Receiver) => Handle::SpscRx(spsc::Receiver::create(name, opts)?),
            (Kind::Mpmc, Role::Sender) => Handle::MpmcTx(mpmc::Sender::create(name, opts)?),
            (Kind::Mpmc, Role::Receiver) => Handle::MpmcRx(mpmc::Receiver::create(name, opts)?),
        })
    }

    /// Try to send `n` messages one at a time.
    fn try_send(&self, next: &mut u64, n: u8) {
        for _ in 0..n {
            *next += 1;
            let ok = match self {
                Handle::SpscTx(t) => t.try_send(Msg::new(*next)).is_ok(),
                Handle::MpmcTx(t) => t.try_send(Msg::new(*next)).is_ok(),
                _ => return,
            };
            tally("try_send", ok);
        }
    }

    fn send_timeout(&self, next: &mut u64, t: Duration) {
        *next += 1;
        let ok = match self {
            Handle::SpscTx(tx) => tx.send_timeout(Msg::new(*next), t).is_ok(),
            Handle::MpmcTx(tx) => tx.send_timeout(Msg::new(*next), t).is_ok(),
            _ => return,
        };
        tally("send_timeout", ok);
    }

    fn try_send_slice(&self, next: &mut u64, n: u8) {
        let batch: Vec<Msg> = (0..u64::from(n)).map(|i| Msg::new(*next + i)).collect();
        *next += u64::from(n);
        match self {
            Handle::SpscTx(t) => {
                let r = t.try_send_slice(&batch);
                if let Ok(sent) = r {
                    assert!(sent <= batch.len(), "try_send_slice reported {sent} of {n}");
                }
                tally("try_send_slice", r.is_ok());
            }
            // MPMC has no batch calls: send them one by one.
            Handle::MpmcTx(t) => {
                for m in batch {
                    tally("try_send", t.try_send(m).is_ok());
                }
            }
            _ => {}
        }
    }

    /// Try to receive `n` messages one at a time; the values are not checked (they may be
    /// anything a hostile peer wrote).
    fn try_recv(&self, n: u8) {
        for _ in 0..n {
            let ok = match self {
                Handle::SpscRx(r) => r.try_recv().is_ok(),
                Handle::MpmcRx(r) => r.try_recv().is_ok(),
                _ => return,
            };
            tally("try_recv", ok);
        }
    }

    fn recv_timeout(&self, t: Duration) {
        let ok = match self {
            Handle::SpscRx(r) => r.recv_timeout(t).is_ok(),
            Handle::MpmcRx(r) => r.recv_timeout(t).is_ok(),
            _ => return,
        };
        tally("recv_timeout", ok);
    }

    fn try_recv_slice(&self, n: u8) {
        let mut buf = vec![Msg::new(0); usize::from(n)];
        match self {
            Handle::SpscRx(r) => {
                let res = r.try_recv_slice(&mut buf);
                if let Ok(got) = res {
                    assert!(got <= buf.len(), "try_recv_slice reported {got} of {n}");
                }
                tally("try_recv_slice", res.is_ok());
            }
            Handle::MpmcRx(_) => self.try_recv(n),
            _ => {}
        }
    }

    fn recv_slice_timeout(&self, n: u8, t: Duration) {
        let mut buf = vec![Msg::new(0); usize::from(n)];
        match self {
            Handle::SpscRx(r) => {
                let res = r.recv_slice_timeout(&mut buf, t);
                if let Ok(got) = res {
                    assert!(got <= buf.len(), "recv_slice_timeout reported {got} of {n}");
                }
                tally("recv_slice_timeout", res.is_ok());
            }
            Handle::MpmcRx(_) => self.recv_timeout(t),
            _ => {}
        }
    }

    /// Every read-only query; `len` must stay within the capacity whatever the positions say.
    fn query(&self) {
        tally("query", true);
        each!(self, h => {
            let (len, cap) = (h.len(), h.capacity());
            assert!(len <= cap, "len {len} above capacity {cap}");
            let _ = (h.is_empty(), h.is_full(), h.is_disconnected(), h.is_connected());
            let _ = format!("{h:?}");
        })
    }

    fn wait_for_peer(&self) {
        each!(self, h => {
            let _ = h.wait_for_peer(Duration::from_millis(1));
        })
    }

    fn try_clone(&self) -> Option<Handle> {
        match self {
            Handle::MpmcTx(t) => Some(Handle::MpmcTx(t.clone())),
            Handle::MpmcRx(r) => Some(Handle::MpmcRx(r.clone())),
            _ => None,
        }
    }
}

/// Aborts the whole test binary (naming the case) if one case runs longer than
/// [`CASE_LIMIT`]: a hang must fail loudly rather than stall `cargo test` for ever. Also
/// records the case for [`on_fatal_signal`], so that a crash names it too.
struct Watchdog {
    state: Arc<Mutex<WatchState>>,
    note: &'static Note,
}

struct WatchState {
    since: Instant,
    what: String,
    done: bool,
}

impl Watchdog {
    fn start() -> Watchdog {
        install_fatal_signal_notes();
        let state = Arc::new(Mutex::new(WatchState {
            since: Instant::now(),
            what: String::new(),
            done: false,
        }));
        let watched = Arc::clone(&state);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let s = watched.lock().unwrap_or_else(|e| e.into_inner());
                if s.done {
                    return;
                }
                if s.since.elapsed() > CASE_LIMIT {
                    // Straight to stderr: the test harness's capture dies with the process.
                    let _ = writeln!(
                        std::io::stderr(),
                        "\nproptest_header: HANG: one case ran for more than {CASE_LIMIT:?}; \
                         aborting. The case: {}",
                        s.what
                    );
                    std::process::abort();
                }
            }
        });
        Watchdog {
            state,
            note: Note::claim(),
        }
    }

    fn case(&self, what: String) {
        self.note.set(Some(what.clone()));
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.since = Instant::now();
        s.what = what;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.note.release();
        self.state.lock().unwrap_or_else(|e| e.into_inner()).done = true;
    }
}

/// The case a test thread is running, where a signal handler can read it: the thread's id
/// and the case's text (a leaked `Box<String>`), each one atomic word.
struct Note {
    tid: AtomicI32,
    text: AtomicPtr<String>,
}

static NOTES: [Note; 16] = [const {
    Note {
        tid: AtomicI32::new(0),
        text: AtomicPtr::new(std::ptr::null_mut()),
    }
}; 16];

fn gettid() -> i32 {
    // SAFETY: a system call without arguments or side effects.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

impl Note {
    /// A free note, for this thread.
    fn claim() -> &'static Note {
        let tid = gettid();
        NOTES
            .iter()
            .find(|n| {
                n.tid
                    .compare_exchange(0, tid, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            })
            .expect("more test threads than notes")
    }

    /// Replace the text. The handler runs on this same thread (the faults it reports are
    /// synchronous), so it reads either the old text or the new one, never a freed one.
    fn set(&self, text: Option<String>) {
        let new = text.map_or(std::ptr::null_mut(), |t| Box::into_raw(Box::new(t)));
        let old = self.text.swap(new, Ordering::SeqCst);
        if !old.is_null() {
            // SAFETY: `old` came from `Box::into_raw` above and was just unpublished.
            drop(unsafe { Box::from_raw(old) });
        }
    }

    fn release(&self) {
        self.set(None);
        self.tid.store(0, Ordering::SeqCst);
    }
}

/// The handlers that were there before ours (Rust's own, for stack overflows), restored by
/// ours before it returns.
static PREVIOUS: OnceLock<Vec<(libc::c_int, libc::sigaction)>> = OnceLock::new();
const FATAL: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// On a crash (or an abort), print the case the crashing thread was running, then let the
/// signal kill the process as it would have: this reports a crash, it does not survive it.
fn install_fatal_signal_notes() {
    PREVIOUS.get_or_init(|| {
        let handler: extern "C" fn(libc::c_int) = on_fatal_signal;
        FATAL
            .iter()
            .map(|&sig| {
                // SAFETY: `sigaction` with valid pointers to initialised structs; the handler
                // only does what a signal handler may (atomic loads, `write`, `sigaction`).
                unsafe {
                    let mut sa: libc::sigaction = std::mem::zeroed();
                    sa.sa_sigaction = handler as libc::sighandler_t;
                    sa.sa_flags = libc::SA_ONSTACK;
                    libc::sigemptyset(&mut sa.sa_mask);
                    let mut old: libc::sigaction = std::mem::zeroed();
                    assert_eq!(libc::sigaction(sig, &sa, &mut old), 0);
                    (sig, old)
                }
            })
            .collect()
    });
}

extern "C" fn on_fatal_signal(sig: libc::c_int) {
    let out = |b: &[u8]| {
        // SAFETY: `write` of a live buffer to stderr; async-signal-safe.
        unsafe { libc::write(2, b.as_ptr().cast(), b.len()) };
    };
    let what: &[u8] = match sig {
        libc::SIGSEGV => b"SIGSEGV",
        libc::SIGBUS => b"SIGBUS",
        libc::SIGILL => b"SIGILL",
        libc::SIGFPE => b"SIGFPE",
        _ => b"SIGABRT",
    };
    out(b"\nproptest_header: ");
    out(what);
    let tid = gettid();
    match NOTES.iter().find(|n| n.tid.load(Ordering::SeqCst) == tid) {
        Some(n) if !n.text.load(Ordering::SeqCst).is_null() => {
            out(b" during the case: ");
            // SAFETY: set by this same thread (see `Note::set`), so not freed under us.
            out(unsafe { &*n.text.load(Ordering::SeqCst) }.as_bytes());
        }
        _ => out(b" on a thread running no case"),
    }
    out(b"\n");
    // Put back what was there; returning re-executes the faulting instruction (or `abort`
    // raises again), and the signal takes its usual course.
    if let Some(prev) = PREVIOUS.get() {
        for (s, old) in prev {
            if *s == sig {
                // SAFETY: restores the action saved at installation.
                unsafe { libc::sigaction(sig, old, std::ptr::null_mut()) };
            }
        }
    }
}

fn backend_for(which: Which, dir: &TempDir) -> Backend {
    match which {
        Which::Posix => Backend::Posix,
        Which::SysV => Backend::SysV,
        Which::File => dir.backend(),
    }
}

/// One case: make the channel, use it, damage it, use what is left, clean up.
fn run_case(kind: Kind, backend: &Backend, c: &Case) {
    let name = unique_name("prop");
    // Declared first, so dropped last: removes the name whatever the handles managed.
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let opts = Options::new()
        .backend(backend.clone())
        .capacity(c.capacity)
        .open_timeout(OPEN_TIMEOUT);
    let mut handles: Vec<Handle> = Vec::new();

    // An intact channel first: this part must work.
    handles.push(Handle::create(kind, c.creator, &name, &opts).expect("create a new channel"));
    if c.peer {
        handles.push(
            Handle::open(kind, c.creator.other(), &name, &opts).expect("open an intact channel"),
        );
    }
    let mut next = 0u64;
    for h in &handles {
        h.try_send(&mut next, c.sent);
    }
    for h in &handles {
        h.try_recv(c.received);
    }

    // The damage, through a mapping of our own.
    let raw = RawMap::new(&name, backend, c.capacity);
    for w in &c.writes {
        raw.apply(w);
    }

    let ms = |t: u8| Duration::from_millis(u64::from(t));
    for op in &c.ops {
        let pick = |i: &Index| (!handles.is_empty()).then(|| i.index(handles.len()));
        match op {
            Op::Open(k, r) => {
                if handles.len() < MAX_HANDLES {
                    let r = Handle::open(*k, *r, &name, &opts);
                    tally("open", r.is_ok());
                    if let Ok(h) = r {
                        handles.push(h);
                    }
                }
            }
            Op::Create(k, r) => {
                if handles.len() < MAX_HANDLES {
                    let r = Handle::create(*k, *r, &name, &opts);
                    tally("create", r.is_ok());
                    if let Ok(h) = r {
                        handles.push(h);
                    }
                }
            }
            Op::TrySend(i, n) => {
                if let Some(i) = pick(i) {
                    handles[i].try_send(&mut next, *n);
                }
            }
            Op::SendTimeout(i, t) => {
                if let Some(i) = pick(i) {
                    handles[i].send_timeout(&mut next, ms(*t));
                }
            }
            Op::TrySendSlice(i, n) => {
                if let Some(i) = pick(i) {
                    handles[i].try_send_slice(&mut next, *n);
                }
            }
            Op::TryRecv(i, n) => {
                if let Some(i) = pick(i) {
                    handles[i].try_recv(*n);
                }
            }
            Op::RecvTimeout(i, t) => {
                if let Some(i) = pick(i) {
                    handles[i].recv_timeout(ms(*t));
                }
            }
            Op::TryRecvSlice(i, n) => {
                if let Some(i) = pick(i) {
                    handles[i].try_recv_slice(*n);
                }
            }
            Op::RecvSliceTimeout(i, n, t) => {
                if let Some(i) = pick(i) {
                    handles[i].recv_slice_timeout(*n, ms(*t));
                }
            }
            Op::Query(i) => {
                if let Some(i) = pick(i) {
                    handles[i].query();
                }
            }
            Op::WaitForPeer(i) => {
                if let Some(i) = pick(i) {
                    handles[i].wait_for_peer();
                }
            }
            Op::Clone(i) => {
                if let Some(i) = pick(i) {
                    if handles.len() < MAX_HANDLES {
                        if let Some(h) = handles[i].try_clone() {
                            handles.push(h);
                        }
                    }
                }
            }
            Op::Drop(i) => {
                if let Some(i) = pick(i) {
                    drop(handles.remove(i));
                }
            }
            Op::Remove => tally("remove", shmchan::remove(&name, &opts).is_ok()),
            Op::Scribble(ws) => {
                for w in ws {
                    raw.apply(w);
                }
            }
        }
    }
    // Every handle left detaches over whatever the header now says.
    drop(handles);
    drop(raw);
}

/// Run the property for one kind of channel on one backend.
fn check(kind: Kind, which: Which) {
    let mut config = Config {
        failure_persistence: None,
        max_shrink_iters: 4096,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    let dir = common::file_dir();
    let backend = backend_for(which, &dir);
    let watchdog = Watchdog::start();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case_strategy(kind), |c| {
        watchdog.case(format!("{kind:?} on {backend}: {c:?}"));
        run_case(kind, &backend, &c);
        Ok::<(), TestCaseError>(())
    });
    if let Err(e) = result {
        panic!("{kind:?} on {backend}: {e}");
    }
    // Calls that succeeded / failed over all cases: errors are fine, but a property whose
    // every call fails would test little.
    eprintln!("{kind:?} on {backend}: {}", tally_report());
}

#[test]
fn hostile_bytes_spsc_posix() {
    check(Kind::Spsc, Which::Posix);
}

#[test]
fn hostile_bytes_spsc_sysv() {
    check(Kind::Spsc, Which::SysV);
}

#[test]
fn hostile_bytes_spsc_file() {
    check(Kind::Spsc, Which::File);
}

#[test]
fn hostile_bytes_mpmc_posix() {
    check(Kind::Mpmc, Which::Posix);
}

#[test]
fn hostile_bytes_mpmc_sysv() {
    check(Kind::Mpmc, Which::SysV);
}

#[test]
fn hostile_bytes_mpmc_file() {
    check(Kind::Mpmc, Which::File);
}

/// Set one header word of a live channel with a sender, a receiver and messages in flight, then
/// open, send, receive, query and drop everything.
fn sweep_one(kind: Kind, backend: &Backend, off: usize, value: u32) {
    let name = unique_name("sweep");
    let _cleanup = Cleanup(name.clone(), backend.clone());
    let opts = Options::new()
        .backend(backend.clone())
        .capacity(4)
        .open_timeout(OPEN_TIMEOUT);
    let tx = Handle::create(kind, Role::Sender, &name, &opts).expect("create");
    let rx = Handle::open(kind, Role::Receiver, &name, &opts).expect("open");
    let mut next = 0;
    tx.try_send(&mut next, 3);
    rx.try_recv(1);
    let raw = RawMap::new(&name, backend, 4);
    raw.write(off, 4, u64::from(value));

    let rx2 = Handle::open(kind, Role::Receiver, &name, &opts);
    let tx2 = Handle::open(kind, Role::Sender, &name, &opts);
    tx.try_send(&mut next, 1);
    tx.try_send_slice(&mut next, 5);
    tx.send_timeout(&mut next, Duration::from_millis(1));
    rx.try_recv(1);
    rx.recv_timeout(Duration::from_millis(1));
    rx.try_recv_slice(4);
    rx.recv_slice_timeout(2, Duration::from_millis(1));
    for h in [&tx, &rx] {
        h.query();
    }
    for h in [&rx2, &tx2].into_iter().flatten() {
        h.try_send(&mut next, 1);
        h.try_recv(1);
        h.query();
    }
    // Judging the channel under its gate (`remove`, and `create`, which reclaims an abandoned
    // channel) reads the identity and the endpoint table again.
    let _ = shmchan::remove(&name, &opts);
    let again = Handle::create(kind, Role::Receiver, &name, &opts);
    drop(rx2);
    drop(tx2);
    drop(rx);
    let _ = shmchan::remove(&name, &opts);
    drop(tx);
    drop(again);
    let _ = shmchan::remove(&name, &opts);
    let _ = Handle::create(kind, Role::Sender, &name, &opts);
    drop(raw);
}

fn sweep(kind: Kind, backend: Backend) {
    let watchdog = Watchdog::start();
    for value in [u32::MAX, 0x8000_0000] {
        for off in (0..SLOTS).step_by(4) {
            watchdog.case(format!("{kind:?} on {backend}: {value:#x} at offset {off}"));
            let r = std::panic::catch_unwind(|| sweep_one(kind, &backend, off, value));
            if let Err(e) = r {
                let msg = e
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("?");
                panic!("{kind:?} on {backend}: {value:#x} at header offset {off} panicked: {msg}");
            }
        }
    }
}

/// Regression: a hostile `u32::MAX` (or a lone sign bit) in any header word must not panic,
/// in debug builds either.
#[test]
fn header_word_sweep_spsc_posix() {
    sweep(Kind::Spsc, Backend::Posix);
}

/// The same over System V, whose gate is a word of the header (`Life::gate`, offset 392).
#[test]
fn header_word_sweep_spsc_sysv() {
    sweep(Kind::Spsc, Backend::SysV);
}

/// The same over an MPMC channel (32 + 32 endpoint entries, stamps with owners).
#[test]
fn header_word_sweep_mpmc_posix() {
    sweep(Kind::Mpmc, Backend::Posix);
}
