//! A byte stream between two processes, as a pipe is: a [`Writer`] that is an
//! [`io::Write`], a [`Reader`] that is an [`io::Read`] and an [`io::BufRead`], and no message
//! boundaries. It runs over the same ring as [`frame`] (each write is one or more
//! records), without a system call per write or read.
//!
//! End of file is what a pipe gives: once the writer is gone (dropped, or its process died)
//! and everything it wrote is read, `read` returns `Ok(0)`; as with a FIFO, a new writer can
//! then open the pipe, and the same reader reads what it writes. A writer whose reader is gone
//! gets [`io::ErrorKind::BrokenPipe`], never a SIGPIPE, until a new reader opens the pipe; a
//! reader killed in the middle of a record (a write's worth, up to a quarter of the ring) leaves
//! that whole record to the next reader, which reads it again from its start. As with any channel, the pipe goes when its
//! last endpoint does: a writer that leaves before a reader ever attached takes what it wrote
//! with it (wait for one first: [`Writer::wait_for_peer`]). A pipe whose shared memory was
//! corrupted (a length that cannot be) reads as end of file.
//!
//! ```
//! use std::io::{BufRead, Read, Write};
//! use shmchan::{pipe, Options};
//! # let name = format!("doc-pipe-{}", std::process::id());
//! let mut w = pipe::Writer::create(&name, &Options::new().capacity(1 << 16))?;
//! let mut r = pipe::Reader::open(&name, &Options::new())?; // usually another process
//!
//! let t = std::thread::spawn(move || -> std::io::Result<()> {
//!     w.write_all(b"first line\nsecond line\n")?;
//!     Ok(()) // dropping `w`: the reader sees end of file after the last byte
//! });
//! let mut line = String::new();
//! r.read_line(&mut line)?; // `BufRead` reads in place
//! assert_eq!(line, "first line\n");
//! let mut rest = String::new();
//! r.read_to_string(&mut rest)?;
//! assert_eq!(rest, "second line\n");
//! t.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::time::{Duration, Instant};

use crate::chan::{Chan, Role};
use crate::error::{Error, RecvTimeoutError, TryRecvError};
use crate::frame;
use crate::layout::Kind;
use crate::options::{Options, WaitStrategy};

/// Create a pipe inside this process (on the heap, no name): `capacity` bytes, rounded up to a
/// power of two.
///
/// # Errors
/// [`Error::InvalidOptions`] if `capacity` is 0 or above [`Options::MAX_CAPACITY`].
///
/// ```
/// use std::io::{Read, Write};
/// let (mut w, mut r) = shmchan::pipe::pipe(1024)?;
/// std::thread::spawn(move || w.write_all(&[1; 5000]).unwrap()); // more than the ring holds
/// let mut all = Vec::new();
/// r.read_to_end(&mut all)?;
/// assert_eq!(all, vec![1; 5000]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pipe(capacity: usize) -> Result<(Writer, Reader), Error> {
    let (a, b) = Chan::heap_pair(capacity, &frame::spec_of(Kind::Pipe, Role::Sender))?;
    let wait = WaitStrategy::default();
    Ok((Writer::from_chan(a, wait)?, Reader::from_chan(b, wait)?))
}

fn broken_pipe() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the pipe's reader is gone")
}

/// How long a read may wait.
#[derive(Clone, Copy)]
enum Patience {
    /// Not at all (probing the writer when a probe is due, as `try_recv` does).
    Try,
    /// Until the deadline (`None`: as long as it takes).
    Until(Option<Instant>),
}

fn would_block(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, what.to_owned())
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

/// The writing end of a pipe: an [`io::Write`]. Dropping it is end of file for the reader.
pub struct Writer {
    inner: frame::Sender,
    /// The most a write puts in one record: a quarter of the ring less a record header, so that
    /// four records tile the ring exactly and several are in flight; at least 16 bytes (the
    /// record's payload is 16-aligned anyway), so a tiny ring still carries whole words.
    chunk: usize,
}

impl Writer {
    /// Create the pipe `name` (exclusively) and attach as its writer. The capacity
    /// ([`Options::capacity`]) is in bytes.
    ///
    /// # Errors
    /// As [`spsc::Sender::create`](crate::spsc::Sender::create).
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &Options) -> Result<Self, Error> {
        let spec = frame::spec_of(Kind::Pipe, Role::Sender);
        Self::from_chan(Chan::create(name, opts, &spec)?, opts.wait)
    }

    /// Open the existing pipe `name` and attach as its writer.
    ///
    /// # Errors
    /// As [`spsc::Sender::open`](crate::spsc::Sender::open); [`Error::Incompatible`] if it is
    /// not a pipe.
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        let spec = frame::spec_of(Kind::Pipe, Role::Sender);
        Self::from_chan(Chan::open(name, opts, &spec)?, opts.wait)
    }

    fn from_chan(chan: Chan, wait: WaitStrategy) -> Result<Self, Error> {
        let inner = frame::Sender::from_chan(chan, wait)?;
        let chunk = (inner.capacity() / 4)
            .saturating_sub(crate::ring::frame::HEADER as usize)
            .max(16)
            .min(inner.max_frame());
        Ok(Writer { inner, chunk })
    }

    /// The ring's size in bytes.
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Is the reader attached and alive now (asked of the kernel)?
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Wait until a reader is attached and alive, at most `timeout`.
    ///
    /// # Errors
    /// As [`frame::Sender::wait_for_peer`].
    pub fn wait_for_peer(&self, timeout: Duration) -> Result<(), crate::WaitForPeerError> {
        self.inner.wait_for_peer(timeout)
    }

    /// Write a prefix of `buf` (as [`write`](io::Write::write) does) if there is room now,
    /// without waiting.
    ///
    /// # Errors
    /// [`io::ErrorKind::WouldBlock`] if the ring is full; `BrokenPipe` if the reader is gone.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// let (mut w, _r) = shmchan::pipe::pipe(64)?;
    /// assert_eq!(w.try_write(&[7; 16])?, 16);
    /// while w.try_write(&[7; 16]).is_ok() {} // fill the ring
    /// assert_eq!(w.try_write(&[7; 16]).unwrap_err().kind(), ErrorKind::WouldBlock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(self.chunk);
        match self.inner.try_send(&buf[..n]) {
            Ok(()) => Ok(n),
            Err(frame::TrySendError::Full) => Err(would_block("the pipe is full")),
            Err(frame::TrySendError::Disconnected) => Err(broken_pipe()),
            Err(e @ frame::TrySendError::TooLarge { .. }) => Err(io::Error::other(e)),
        }
    }

    /// Write a prefix of `buf` (as [`write`](io::Write::write) does), waiting for room at most
    /// `timeout`.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] if the ring stayed full; `BrokenPipe` if the reader is gone.
    pub fn write_timeout(&mut self, buf: &[u8], timeout: Duration) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(self.chunk);
        match self.inner.send_timeout(&buf[..n], timeout) {
            Ok(()) => Ok(n),
            Err(frame::SendTimeoutError::Timeout) => Err(timed_out("the pipe stayed full")),
            Err(frame::SendTimeoutError::Disconnected) => Err(broken_pipe()),
            Err(e @ frame::SendTimeoutError::TooLarge { .. }) => Err(io::Error::other(e)),
        }
    }
}

impl io::Write for Writer {
    /// Write a prefix of `buf` (as much as one record takes: about a quarter of the ring),
    /// waiting for room as long as it takes. `Err(BrokenPipe)` if the reader is gone.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(self.chunk);
        match self.inner.send(&buf[..n]) {
            Ok(()) => Ok(n),
            Err(frame::SendError::Disconnected) => Err(broken_pipe()),
            Err(e @ frame::SendError::TooLarge { .. }) => Err(io::Error::other(e)),
        }
    }

    /// Nothing to do: written bytes are visible to the reader at once.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("pipe::Writer")
            .field("inner", &self.inner)
            .finish()
    }
}

/// The reading end of a pipe: an [`io::Read`] and an [`io::BufRead`] whose
/// [`fill_buf`](io::BufRead::fill_buf) hands out the ring's bytes in place.
pub struct Reader {
    inner: frame::Receiver,
    /// The record being read: payload position and length, and how much of it is consumed.
    current: Option<(u64, u64)>,
    consumed: usize,
}

impl Reader {
    /// Create the pipe `name` (exclusively) and attach as its reader.
    ///
    /// # Errors
    /// As [`Writer::create`].
    #[cfg(not(loom))]
    pub fn create(name: &str, opts: &Options) -> Result<Self, Error> {
        let spec = frame::spec_of(Kind::Pipe, Role::Receiver);
        Self::from_chan(Chan::create(name, opts, &spec)?, opts.wait)
    }

    /// Open the existing pipe `name` and attach as its reader.
    ///
    /// # Errors
    /// As [`Writer::open`].
    #[cfg(not(loom))]
    pub fn open(name: &str, opts: &Options) -> Result<Self, Error> {
        let spec = frame::spec_of(Kind::Pipe, Role::Receiver);
        Self::from_chan(Chan::open(name, opts, &spec)?, opts.wait)
    }

    fn from_chan(chan: Chan, wait: WaitStrategy) -> Result<Self, Error> {
        Ok(Reader {
            inner: frame::Receiver::from_chan(chan, wait)?,
            current: None,
            consumed: 0,
        })
    }

    /// The ring's size in bytes.
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Is the writer attached and alive now (asked of the kernel)?
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Wait until a writer is attached and alive, at most `timeout`.
    ///
    /// # Errors
    /// As [`frame::Receiver::wait_for_peer`].
    pub fn wait_for_peer(&self, timeout: Duration) -> Result<(), crate::WaitForPeerError> {
        self.inner.wait_for_peer(timeout)
    }

    /// Read what is there now (as [`read`](io::Read::read) does), without waiting; `Ok(0)`
    /// only at end of file.
    ///
    /// # Errors
    /// [`io::ErrorKind::WouldBlock`] if there is nothing to read yet.
    ///
    /// ```
    /// use std::io::{ErrorKind, Write};
    /// let (mut w, mut r) = shmchan::pipe::pipe(1024)?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(r.try_read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    /// w.write_all(b"abc")?;
    /// assert_eq!(r.try_read(&mut buf)?, 3);
    /// drop(w);
    /// assert_eq!(r.try_read(&mut buf)?, 0); // end of file
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_until(buf, Patience::Try)
            .map_err(|()| would_block("nothing to read in the pipe yet"))
    }

    /// Read what is there (at least one byte), waiting for some at most `timeout`; `Ok(0)`
    /// only at end of file.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] if nothing came in time.
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.read_until(buf, Patience::Until(crate::chan::deadline_after(timeout)))
            .map_err(|()| timed_out("nothing came through the pipe in time"))
    }
}

impl io::BufRead for Reader {
    /// The unread bytes of the next record, in place in the ring, waiting for one as long as
    /// it takes; empty at end of file (the writer gone, everything read). End of file is not
    /// for ever, as with a FIFO: once a new writer attaches, the next call waits for (and
    /// returns) what it writes.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let Ok(Some((pos, len))) = self.available(Patience::Until(None)) else {
            return Ok(&[]);
        };
        // SAFETY: `(pos, len)` came from `next_frame` and is released only in `consume` (or
        // in `available`), after this borrow of `self` ends.
        let bytes = unsafe { self.inner.frame_bytes(pos, len) };
        Ok(&bytes[self.consumed..])
    }

    /// Mark `amt` bytes of what [`fill_buf`](io::BufRead::fill_buf) returned as read; a record read
    /// to its end is freed for the writer at once.
    fn consume(&mut self, amt: usize) {
        if self.inner.chan().forked() {
            return;
        }
        if let Some((_, len)) = self.current {
            self.consumed = (self.consumed + amt).min(len as usize);
            if self.consumed as u64 == len {
                self.inner.release(len);
                self.current = None;
            }
        }
    }
}

impl Reader {
    /// The record being read, with bytes left in it (waiting for the next one as `patience`
    /// says): its position and length; `None` at end of file, or in a forked child's copy,
    /// which reads nothing of its parent's pipe; `Err` if there was none in time.
    fn available(&mut self, patience: Patience) -> Result<Option<(u64, u64)>, ()> {
        if self.inner.chan().forked() {
            return Ok(None);
        }
        loop {
            if let Some((pos, len)) = self.current {
                if (self.consumed as u64) < len {
                    return Ok(Some((pos, len)));
                }
                self.inner.release(len);
                self.current = None;
            }
            let next = match patience {
                Patience::Try => self.inner.try_next_frame().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                }),
                Patience::Until(deadline) => self.inner.next_frame(deadline),
            };
            match next {
                Ok(at) => {
                    self.current = Some(at);
                    self.consumed = 0;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => return Err(()),
            }
        }
    }

    /// [`read`](io::Read::read), waiting as `patience` says; `Err` if nothing came in time.
    fn read_until(&mut self, buf: &mut [u8], patience: Patience) -> Result<usize, ()> {
        use io::BufRead;
        if buf.is_empty() {
            return Ok(0);
        }
        let Some((pos, len)) = self.available(patience)? else {
            return Ok(0);
        };
        let n = (len as usize - self.consumed).min(buf.len());
        // SAFETY: bytes `consumed .. consumed + n` of the record at `pos` lie in the mapping
        // (`next_frame` checked the record; `n <= len - consumed`), and the record is ours
        // until `consume` frees it below; `buf` is the caller's, at least `n` bytes, and cannot
        // overlap the mapping (it is `&mut`, the mapping shared). The bytes are read through
        // the raw pointer with the race-free copy, so a writer breaking the protocol meanwhile
        // leaves odd bytes, not undefined behaviour.
        unsafe {
            crate::ring::copy::copy_from_shared(
                buf.as_mut_ptr(),
                self.inner.frame_ptr(pos).add(self.consumed),
                n,
            )
        };
        self.consume(n);
        Ok(n)
    }
}

impl io::Read for Reader {
    /// Read what is there (at least one byte), waiting for some as long as it takes; `Ok(0)`
    /// only at end of file.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // No deadline: never `Err`.
        Ok(self.read_until(buf, Patience::Until(None)).unwrap_or(0))
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("pipe::Reader")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
