//! [`Options`], [`Backend`] and [`WaitStrategy`]: how a channel is created, found and waited on.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where a channel's shared memory lives.
///
/// | backend | the region is | removed by |
/// |---|---|---|
/// | [`Posix`](Backend::Posix) | `/dev/shm/<name>` (`shm_open`) | `shm_unlink` |
/// | [`SysV`](Backend::SysV) | a System V segment whose key is derived from the name (`shmget`) | `shmctl(IPC_RMID)` |
/// | [`File`](Backend::File) | the file `<dir>/<name>`, mapped `MAP_SHARED` | `unlink` |
///
/// Every backend behaves the same above this choice: same header, same checks, same removal of
/// the name when the last handle detaches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// A POSIX shared memory object on `/dev/shm`.
    #[default]
    Posix,
    /// A System V shared memory segment. The key is a hash of the name; the full name is kept in
    /// the region's header, so two names that hash to one key are told apart and reported.
    SysV,
    /// A file in the given directory, mapped with `mmap(MAP_SHARED)`. A directory on a tmpfs
    /// (such as `/dev/shm` or `/run/user/<uid>`) keeps the data off the disk.
    File(PathBuf),
}

impl Backend {
    /// The System V key used for channel `name` by [`Backend::SysV`] (as `ipcs -m` shows it):
    /// a hash of the name, never `IPC_PRIVATE`.
    ///
    /// ```
    /// let key = shmchan::Backend::sysv_key("ticks");
    /// assert!(key > 0);
    /// ```
    pub fn sysv_key(name: &str) -> i32 {
        crate::layout::sysv_key(name)
    }

    /// Where the region for `name` lives on this backend, in words for messages.
    ///
    /// ```
    /// use shmchan::Backend;
    /// assert_eq!(Backend::Posix.location("ticks"), "/dev/shm/ticks (POSIX shared memory)");
    /// ```
    pub fn location(&self, name: &str) -> String {
        match self {
            Backend::Posix => format!("/dev/shm/{name} (POSIX shared memory)"),
            Backend::SysV => format!(
                "System V segment with key {:#010x} (derived from the name)",
                crate::layout::sysv_key(name)
            ),
            Backend::File(dir) => format!("{} (mapped file)", dir.join(name).display()),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Posix => f.write_str("POSIX"),
            Backend::SysV => f.write_str("System V"),
            Backend::File(dir) => write!(f, "file in {}", dir.display()),
        }
    }
}

/// What a blocking call does while it waits for a message (receiver) or for room (sender).
///
/// Whatever the strategy, a waiting call notices a peer that disconnects or dies (within about
/// 40 ms for a killed process) and honours its timeout (`Duration::MAX`: no timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Busy-poll for the given time, then yield the CPU a few times, then sleep on a futex until
    /// woken. The peer pays one extra shared load per operation while nobody sleeps.
    SpinThenPark(Duration),
    /// Busy-poll and never sleep: lowest latency, one core at 100% while waiting.
    Spin,
    /// Sleep on the futex at once: least CPU, a system call per wake-up.
    Park,
}

impl Default for WaitStrategy {
    /// Spin for 50 µs, then park.
    fn default() -> Self {
        WaitStrategy::SpinThenPark(Duration::from_micros(50))
    }
}

/// How to create or open a channel.
///
/// ```
/// use std::time::Duration;
/// use shmchan::{Backend, Options, WaitStrategy};
///
/// let opts = Options::new()
///     .capacity(4096)
///     .backend(Backend::SysV)
///     .mode(0o640)
///     .open_timeout(Duration::from_millis(500))
///     .wait_strategy(WaitStrategy::Spin);
/// assert_eq!(opts.get_capacity(), 4096);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub(crate) capacity: usize,
    pub(crate) backend: Backend,
    pub(crate) mode: u32,
    pub(crate) open_timeout: Duration,
    pub(crate) wait: WaitStrategy,
    pub(crate) max_senders: u32,
    pub(crate) max_receivers: u32,
    pub(crate) max_subscribers: u32,
    pub(crate) overflow: Option<crate::broadcast::Overflow>,
    pub(crate) max_frame: Option<usize>,
    pub(crate) type_name: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            capacity: Self::DEFAULT_CAPACITY,
            backend: Backend::Posix,
            mode: 0o600,
            open_timeout: Duration::from_secs(2),
            wait: WaitStrategy::default(),
            max_senders: crate::mpmc::MAX_SENDERS as u32,
            max_receivers: crate::mpmc::MAX_RECEIVERS as u32,
            max_subscribers: crate::broadcast::DEFAULT_MAX_SUBSCRIBERS as u32,
            overflow: None,
            max_frame: None,
            type_name: None,
        }
    }
}

impl Options {
    /// The ring capacity used when none is set.
    pub const DEFAULT_CAPACITY: usize = 1024;
    /// The largest ring capacity, in messages.
    pub const MAX_CAPACITY: usize = 1 << 30;

    /// Defaults: [`Backend::Posix`], capacity [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY),
    /// mode `0o600`, open timeout 2 s, [`WaitStrategy::default()`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Ring capacity in messages, used by `create` (an opener takes the creator's). Rounded up
    /// to a power of two; `capacity()` on a handle reports the real one. Must be at least 1
    /// and at most [`MAX_CAPACITY`](Self::MAX_CAPACITY), or `create` returns
    /// [`Error::InvalidOptions`](crate::Error::InvalidOptions).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Where the shared memory lives (default [`Backend::Posix`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Permission bits of the region, used by `create` (default `0o600`: only this user). Set
    /// exactly, whatever the process umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// MPMC channels: how many senders may be attached *at once*, used by `create` (default
    /// [`mpmc::MAX_SENDERS`](crate::mpmc::MAX_SENDERS), 32). A sender that leaves (dropped, or
    /// its process died) frees its place for the next one, so this never limits how many
    /// attach over the channel's life. Senders and receivers together may be at most 64;
    /// `create` returns [`Error::InvalidOptions`](crate::Error::InvalidOptions) otherwise.
    /// Ignored by the other kinds (one sender, one receiver).
    ///
    /// ```
    /// use shmchan::{mpmc, Error, Options};
    /// # let name = format!("doc-max-senders-{}", std::process::id());
    /// let opts = Options::new().max_senders(1).max_receivers(4);
    /// let rx = mpmc::Receiver::<u64>::create(&name, &opts)?;
    /// let tx = mpmc::Sender::<u64>::open(&name, &opts)?;
    /// assert!(matches!(mpmc::Sender::<u64>::open(&name, &opts), Err(Error::EndpointTaken { .. })));
    /// drop(tx); // its place is free again
    /// let tx = mpmc::Sender::<u64>::open(&name, &opts)?;
    /// # Ok::<(), shmchan::Error>(())
    /// ```
    pub fn max_senders(mut self, n: usize) -> Self {
        self.max_senders = u32::try_from(n).unwrap_or(u32::MAX);
        self
    }

    /// MPMC channels: how many receivers may be attached *at once*, used by `create` (default
    /// [`mpmc::MAX_RECEIVERS`](crate::mpmc::MAX_RECEIVERS), 32); as
    /// [`max_senders`](Self::max_senders).
    pub fn max_receivers(mut self, n: usize) -> Self {
        self.max_receivers = u32::try_from(n).unwrap_or(u32::MAX);
        self
    }

    /// Broadcast topics: how many subscribers may be attached *at once*, used by `create`
    /// (default [`broadcast::DEFAULT_MAX_SUBSCRIBERS`](crate::broadcast::DEFAULT_MAX_SUBSCRIBERS),
    /// 64; at most 127). A subscriber that leaves (dropped, or its process died) frees its
    /// place for the next. Each costs the topic 128 bytes; the publisher's cost per message in
    /// the default overflow mode does not depend on it.
    pub fn max_subscribers(mut self, n: usize) -> Self {
        self.max_subscribers = u32::try_from(n).unwrap_or(u32::MAX);
        self
    }

    /// Broadcast topics: what the publisher does when a subscriber is a ring behind
    /// ([`broadcast::Overflow`](crate::broadcast::Overflow); default `Overwrite`: it never
    /// waits, and the subscriber is told how many messages it lost). Chosen by `create`; an
    /// `open` that sets it must match the topic's, or gets
    /// [`Error::Incompatible`](crate::Error::Incompatible).
    pub fn overflow(mut self, overflow: crate::broadcast::Overflow) -> Self {
        self.overflow = Some(overflow);
        self
    }

    /// Broadcast frame topics: the largest frame, in bytes, used by `create` (default
    /// [`broadcast::DEFAULT_MAX_FRAME`](crate::broadcast::DEFAULT_MAX_FRAME), 1024; rounded up
    /// to a multiple of 8; at most [`broadcast::MAX_FRAME`](crate::broadcast::MAX_FRAME)).
    /// Every slot of such a topic holds a frame of up to this size, so the topic maps about
    /// `capacity * (max_frame + 16)` bytes. A subscriber takes the topic's; a publisher that
    /// sets it when it takes a topic over must match it, or gets
    /// [`Error::Incompatible`](crate::Error::Incompatible).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = Some(bytes);
        self
    }

    /// Typed channels and topics (`spsc`, `mpmc`, `broadcast` of a `T`): the name of the
    /// payload type, in place of `T`'s Rust name, for the check every `create` and `open`
    /// makes (size, alignment and a hash of the name must match the channel's, or the handle
    /// gets [`Error::Incompatible`](crate::Error::Incompatible)).
    ///
    /// By default a type is named by its Rust name without module paths (`my_app::Quote` is
    /// `Quote`, `Tick<u64>` is `Tick<u64>`), which a program in another language cannot
    /// always spell. Give both sides the same name: a Rust `Quote` and a Python
    /// `numpy.dtype` or a [`untyped::Element`](crate::untyped::Element) named `"Quote"` of
    /// the same size and alignment then agree. A name is 1 to 104 bytes, without `::` or
    /// control characters, and not `frames` or `bytes` (reserved for byte channels): `create`
    /// and `open` return [`Error::InvalidOptions`](crate::Error::InvalidOptions) otherwise. Frames and pipes carry bytes and ignore it.
    ///
    /// ```
    /// use shmchan::{spsc, untyped, Options};
    /// # let name = format!("doc-type-name-{}", std::process::id());
    /// // This program's quote type; the other program calls it `Quote`.
    /// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    /// #[repr(C)]
    /// struct RawQuote { instrument: u32, side: u32, price: i64, qty: i64 }
    /// let tx = spsc::Sender::<RawQuote>::create(&name, &Options::new().type_name("Quote"))?;
    /// // The other program, which knows the type only by name, size and alignment:
    /// let quote = untyped::Element::new("Quote", 24, 8);
    /// let rx = untyped::spsc::Receiver::open(&name, &quote, &Options::new())?;
    /// tx.send(RawQuote { instrument: 7, side: 1, price: 100, qty: 5 })?;
    /// let mut bytes = [0u8; 24];
    /// assert_eq!(rx.recv(&mut bytes)?, 1);
    /// assert_eq!(bytes[..4], 7u32.to_ne_bytes());
    /// // Under its Rust name (the default, `RawQuote`), a sender would not agree:
    /// drop(tx);
    /// assert!(spsc::Sender::<RawQuote>::open(&name, &Options::new()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn type_name(mut self, name: impl Into<String>) -> Self {
        self.type_name = Some(name.into());
        self
    }

    /// How long `open` waits for a region that exists but whose creator has not finished
    /// initialising it (default 2 s; `Duration::MAX`: as long as it takes), and how long
    /// `create` and [`remove`](crate::remove) wait for another process that holds the
    /// channel's lock while it creates, joins or closes it. `open` of a name that does not
    /// exist fails at once.
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// How blocking calls wait (default [`WaitStrategy::SpinThenPark`] for 50 µs). A property
    /// of each handle, not of the channel: the two sides may choose differently.
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = wait;
        self
    }

    /// The capacity that `create` will ask for (before rounding up to a power of two).
    pub fn get_capacity(&self) -> usize {
        self.capacity
    }

    /// The backend.
    pub fn get_backend(&self) -> &Backend {
        &self.backend
    }
}
