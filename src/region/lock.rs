//! Locks the kernel holds for a region: the *gate*, and one *witness* per endpoint.
//!
//! **Witnesses: who is alive.** An endpoint is alive while the kernel says so, never because
//! a pid is or is not listed in `/proc` (another pid namespace, `hidepid`, no `/proc` at all, a
//! zombie leader whose threads still run, a process that `exec`s: each fools a pid check).
//!
//! - POSIX and File: the endpoint in entry `i` holds an open-file-description lock (`F_OFD_SETLK`)
//!   on byte [`endpoint_byte`]`(i)` of the region's descriptor from before it claims the entry
//!   until its handle is dropped. The kernel releases it when the descriptor's last reference is
//!   closed: at exit, at `execve` (the descriptor is close-on-exec), or when the handle goes. A
//!   forked child does not keep it (`fork.rs`). A peer asks `F_OFD_GETLK`: no lock, no endpoint.
//! - System V: the entry names its process's token (`token.rs`).
//! - Heap (in-process): nobody dies alone.
//!
//! **The gate: one name, one channel.** Everything that decides on a channel's life holds its
//! gate: the creator from the moment the name exists until the header is published, an opener
//! while it validates and claims its endpoint, and whoever closes the channel (the last handle
//! out, a `create` reclaiming an abandoned channel, [`remove`](crate::remove)) while it checks
//! that no endpoint is alive, marks the channel closed and removes the name. So nobody joins a
//! channel being closed, and a name is only ever removed by a holder of the gate of the object
//! it names, after checking (under that gate) that it still names it: the name cannot have
//! been moved to another object in between, since that would take removing it first.
//!
//! - POSIX and File: an OFD write lock on byte [`GATE_BYTE`], taken through a duplicate of the
//!   region's descriptor (the same open file description), so the guard owns what it releases.
//! - System V: a word in the header ([`Life::gate`](crate::layout::Life)) holding the holder's
//!   token id + 1, taken by CAS, and taken over (CAS again) from a holder whose token is dead.
//! - Heap: nothing to serialize (no name).
//!
//! A holder killed inside the gate releases it (OFD: at exit; System V: its token dies), and
//! every step taken under it is a single store or can be redone by the next holder. (Making a
//! closed channel's object a channel anew zeroes it, but never the line that holds the gate.)

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::fork::Guarded;
use crate::sync::AtomicU64;
use crate::sys::{self, LockKind};

/// The byte of a POSIX or File region's descriptor that is the gate.
pub(crate) const GATE_BYTE: u64 = 0;

/// The byte of a POSIX or File region's descriptor that endpoint entry `i`'s holder locks.
pub(crate) fn endpoint_byte(i: usize) -> u64 {
    1 + i as u64
}

/// A held gate; released on drop.
pub(crate) enum Gate {
    /// A duplicate of the region's descriptor, holding the OFD lock on [`GATE_BYTE`].
    Ofd(Guarded),
    /// A System V gate word, in an attachment of the gate's own.
    SysV {
        attachment: super::sysv::Attachment,
        /// Offset of the gate word in the attachment.
        offset: usize,
        /// What we stored in it.
        mine: u64,
    },
    /// In-process channels have no name to guard.
    Heap,
}

/// Why a gate was not taken.
pub(crate) enum GateError {
    /// Another holder kept it past the deadline.
    Timeout,
    /// A system call failed.
    Io(io::Error),
}

impl From<io::Error> for GateError {
    fn from(e: io::Error) -> Self {
        GateError::Io(e)
    }
}

/// Wait for the next try at a gate: a few yields, then 1 ms naps. `Err` once past `deadline`.
fn pause(tries: &mut u32, deadline: Option<Instant>) -> Result<(), GateError> {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(GateError::Timeout);
    }
    *tries += 1;
    if *tries < 20 {
        crate::sync::yield_now();
    } else {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

impl Gate {
    /// Take the gate of a POSIX or File region whose descriptor is `fd`.
    pub(crate) fn ofd(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<Gate, GateError> {
        let dup = Guarded::open(|| sys::dup(fd))?;
        let mut tries = 0;
        while !sys::ofd_setlk(dup.as_fd(), GATE_BYTE, LockKind::Write)? {
            pause(&mut tries, deadline)?;
        }
        Ok(Gate::Ofd(dup))
    }

    /// Take the System V gate whose word is at `offset` in segment `id`, as the process whose
    /// token is `token`.
    pub(crate) fn sysv(
        id: libc::c_int,
        offset: usize,
        token: u32,
        deadline: Option<Instant>,
    ) -> Result<Gate, GateError> {
        let attachment = super::sysv::Attachment::new(id)?;
        let mine = u64::from(token) + 1;
        let mut tries = 0;
        {
            let word = sysv_word(&attachment, offset)?;
            // A value that is no token id + 1 (a corrupt word) names no live process.
            let alive = |held: u64| u32::try_from(held - 1).is_ok_and(super::token::alive);
            while !super::gate_word::try_take(word, mine, alive) {
                pause(&mut tries, deadline)?;
            }
        }
        Ok(Gate::SysV {
            attachment,
            offset,
            mine,
        })
    }
}

/// The gate word at `offset` of an attachment.
fn sysv_word(a: &super::sysv::Attachment, offset: usize) -> io::Result<&AtomicU64> {
    if offset % 8 != 0 || offset + 8 > a.len() {
        return Err(io::Error::other("System V gate word out of bounds"));
    }
    // SAFETY: in bounds and 8-byte aligned (the attachment is page-aligned and `offset` a
    // multiple of 8), inside a mapping the attachment keeps alive as long as the returned
    // borrow; any bits are a valid `AtomicU64`, and every process only accesses it atomically.
    Ok(unsafe { &*a.base().add(offset).cast::<AtomicU64>() })
}

impl Drop for Gate {
    fn drop(&mut self) {
        match self {
            Gate::Ofd(fd) => {
                let _ = sys::ofd_setlk(fd.as_fd(), GATE_BYTE, LockKind::Unlock);
            }
            Gate::SysV {
                attachment,
                offset,
                mine,
            } => {
                if let Ok(word) = sysv_word(attachment, *offset) {
                    super::gate_word::release(word, *mine);
                }
            }
            Gate::Heap => {}
        }
    }
}
