//! asyncio without a thread per waiter: one `LoopWaker` (an eventfd) per event loop, which the
//! Python side registers with `loop.add_reader`. A pending receive keeps its Rust future (the
//! library's `recv_async`, registered with the library's reactor); the future's `Waker` only
//! records its token and writes the eventfd, so the reactor thread never needs the GIL. The
//! loop's reader callback drains the tokens and wakes the matching asyncio futures, whose tasks
//! poll their Rust futures again.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use pyo3::prelude::*;

/// What a `Waker` made by a `LoopWaker` shares with it.
struct Shared {
    fd: OwnedFd,
    /// Tokens woken since the last `drain`.
    ready: Mutex<Vec<u64>>,
}

impl Shared {
    fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live `u64` to an eventfd we own; a full counter
        // (EAGAIN, non-blocking) already means "woken".
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&raw const one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

struct TokenWaker {
    shared: Arc<Shared>,
    token: u64,
}

impl Wake for TokenWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.token);
        self.shared.ring();
    }
}

/// An eventfd that Rust wakers write and an asyncio loop reads (`loop.add_reader(w.fileno(),
/// ...)`), with the tokens of the wakers that fired. Internal to `shmchan`'s asyncio support.
#[pyclass(module = "shmchan._shmchan", frozen)]
pub struct LoopWaker {
    shared: Arc<Shared>,
}

impl LoopWaker {
    /// A waker that wakes `token`.
    pub(crate) fn waker(&self, token: u64) -> Waker {
        Waker::from(Arc::new(TokenWaker {
            shared: self.shared.clone(),
            token,
        }))
    }
}

#[pymethods]
impl LoopWaker {
    #[new]
    fn new() -> PyResult<Self> {
        // SAFETY: plain system call; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(LoopWaker {
            shared: Arc::new(Shared {
                fd,
                ready: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The eventfd, for `loop.add_reader`.
    fn fileno(&self) -> i32 {
        self.shared.fd.as_raw_fd()
    }

    /// Reset the eventfd and return the tokens woken since the last call.
    fn drain(&self) -> Vec<u64> {
        let mut n: u64 = 0;
        // SAFETY: reads 8 bytes into a live `u64` from an eventfd we own (non-blocking: EAGAIN
        // when nothing was written, which is fine).
        unsafe {
            libc::read(
                self.shared.fd.as_raw_fd(),
                (&raw mut n).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        std::mem::take(&mut *self.shared.ready.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Wake `token` as a Rust waker would (for tests).
    fn wake(&self, token: u64) {
        self.waker(token).wake();
    }
}
