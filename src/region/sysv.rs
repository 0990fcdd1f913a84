//! System V shared memory: `shmget` with a key derived from the name, `shmat`, `shmdt`,
//! `shmctl(IPC_RMID)`. The full name lives in the header, so a second name whose key collides
//! is reported by validation instead of joining the wrong channel. Segment ids are unique (the
//! kernel adds a sequence number), so removing by id never removes another channel.

use std::ptr::NonNull;
use std::time::Instant;

use super::lock::{Gate, GateError};
use super::{gate_error, os_error};
use crate::error::Error;
use crate::layout::{Header, Mark, sysv_key};
use crate::options::Backend;
use crate::sys;

/// One attachment of a segment; detached on drop.
pub(crate) struct Attachment {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: an attachment is an address range of this process; accesses through it are atomic
// or follow the ring protocol, whichever thread makes them.
unsafe impl Send for Attachment {}
// SAFETY: as above.
unsafe impl Sync for Attachment {}

impl Attachment {
    /// Attach all of segment `id` read-write (lazily: no page is touched).
    pub(crate) fn new(id: libc::c_int) -> std::io::Result<Attachment> {
        let len = sys::shm_stat(id)?.shm_segsz;
        let p = sys::shmat(id, 0)?;
        let base = NonNull::new(p).ok_or_else(|| std::io::Error::other("shmat returned null"))?;
        Ok(Attachment { base, len })
    }

    /// Attach all of segment `id` read-only (for looking, never for writing: `shmchan::inspect`).
    pub(crate) fn read_only(id: libc::c_int) -> std::io::Result<Attachment> {
        let len = sys::shm_stat(id)?.shm_segsz;
        let p = sys::shmat(id, libc::SHM_RDONLY)?;
        let base = NonNull::new(p).ok_or_else(|| std::io::Error::other("shmat returned null"))?;
        Ok(Attachment { base, len })
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: `base` came from `shmat` and is detached only here; nothing borrows from an
        // attachment beyond its owner's life.
        let _ = unsafe { sys::shmdt(self.base.as_ptr()) };
    }
}

pub(super) struct SysVShm {
    pub(super) id: libc::c_int,
    pub(super) key: libc::key_t,
    pub(super) attachment: Attachment,
    /// This process's liveness token for this segment's group and mode (`token.rs`).
    pub(super) token: u32,
}

/// Remove the segment of channel `name` without attaching it (one too small to hold a header,
/// so without a gate): by the id its key names now, which no later segment can have.
pub(crate) fn remove_unmapped(name: &str) -> std::io::Result<()> {
    let id = sys::shmget(sysv_key(name), 0, 0)?;
    sys::shm_rmid(id)
}

/// Offset of the System V gate word in the header.
fn gate_offset() -> usize {
    core::mem::offset_of!(Header, life) + core::mem::offset_of!(crate::layout::Life, gate)
}

impl SysVShm {
    /// Create the segment exclusively and take its gate, then reserve its memory.
    pub(super) fn create(
        name: &str,
        len: usize,
        mode: u32,
        deadline: Option<Instant>,
    ) -> Result<(SysVShm, Gate), Error> {
        let err = |op, e| os_error(op, name, Backend::SysV, e);
        let token =
            super::token::for_new_segment(mode).map_err(|e| err("shmget (liveness token)", e))?;
        let key = sysv_key(name);
        // shmget's mode is not subject to the umask.
        let id = sys::shmget(
            key,
            len,
            libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as libc::c_int,
        )
        .map_err(|e| err("shmget (create)", e))?;
        // Until we hold the gate, a reclaimer may take the new (still empty) segment for one
        // whose creator died and remove it: then `Attachment::new` finds no segment, and the
        // name is taken over: `AlreadyExists` (the caller tries again).
        let raced = |e: std::io::Error| match e.raw_os_error() {
            Some(libc::EINVAL | libc::EIDRM) => Error::AlreadyExists {
                name: name.to_owned(),
                backend: Backend::SysV,
            },
            _ => err("shmat", e),
        };
        let made = (|| {
            let attachment = Attachment::new(id).map_err(raced)?;
            let seg = SysVShm {
                id,
                key,
                attachment,
                token,
            };
            // Mark the segment as a channel being made before anything else touches it:
            // openers, reclaimers and removers take the gate (a write to the segment) only
            // of a marked segment.
            Mark::write(seg.header());
            let gate = seg
                .gate(deadline)
                .map_err(|e| gate_error(e, name, Backend::SysV))?;
            Ok((seg, gate))
        })();
        let (seg, gate) = match made {
            Ok(r) => r,
            Err(e) => {
                let _ = sys::shm_rmid(id);
                return Err(e);
            }
        };
        // Under the gate, the segment must be as we made it: still named by us, and its header
        // unpublished. Otherwise a reclaimer took it, between our mark and our gate, for one
        // whose creator died, and removed it.
        if !seg.is_named() || seg.header().is_ready() {
            return Err(Error::AlreadyExists {
                name: name.to_owned(),
                backend: Backend::SysV,
            });
        }
        if let Err(e) = seg.reserve() {
            let _ = sys::shm_rmid(id);
            return Err(err(
                "madvise(MADV_POPULATE_WRITE) (reserving the segment's memory)",
                e,
            ));
        }
        Ok((seg, gate))
    }

    /// Find the segment, check it can hold a header, attach it (lazily) and take its gate.
    pub(super) fn open(name: &str, deadline: Option<Instant>) -> Result<(SysVShm, Gate), Error> {
        // A segment removed between `shmget` and `shmat` is not found.
        let err = |op, e: std::io::Error| match e.raw_os_error() {
            Some(libc::EINVAL | libc::EIDRM) => Error::NotFound {
                name: name.to_owned(),
                backend: Backend::SysV,
            },
            _ => os_error(op, name, Backend::SysV, e),
        };
        let key = sysv_key(name);
        let id = sys::shmget(key, 0, 0)
            .map_err(|e| os_error("open (shmget)", name, Backend::SysV, e))?;
        // A System V segment has its full size from the moment it exists.
        let ds = sys::shm_stat(id).map_err(|e| err("shmctl(IPC_STAT)", e))?;
        let len = ds.shm_segsz;
        if len < size_of::<Header>() {
            return Err(Error::Incompatible {
                name: name.to_owned(),
                backend: Backend::SysV,
                detail: format!(
                    "the segment is {len} bytes, smaller than a shmchan header ({} bytes)",
                    size_of::<Header>()
                ),
            });
        }
        let token = super::token::for_segment(id).map_err(|e| err("shmget (liveness token)", e))?;
        let attachment = Attachment::new(id).map_err(|e| err("shmat", e))?;
        let seg = SysVShm {
            id,
            key,
            attachment,
            token,
        };
        seg.wait_for_mark(name, deadline)?;
        let gate = seg
            .gate(deadline)
            .map_err(|e| gate_error(e, name, Backend::SysV))?;
        Ok((seg, gate))
    }

    /// Nothing is written to a segment (not even its gate word) before it is known to be a
    /// shmchan channel of this layout: wait until `deadline` for a segment whose mark is still
    /// all zeros (a creator marks it microseconds after making it), and refuse one with
    /// anything else there at once.
    fn wait_for_mark(&self, name: &str, deadline: Option<Instant>) -> Result<(), Error> {
        let incompatible = |detail| Error::Incompatible {
            name: name.to_owned(),
            backend: Backend::SysV,
            detail,
        };
        loop {
            match crate::name::mark_verdict(Mark::of_header(self.header())) {
                Ok(_) => return Ok(()),
                Err(detail) if Mark::of_header(self.header()) != Mark::Zeros => {
                    return Err(incompatible(detail));
                }
                Err(detail) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(incompatible(detail));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    pub(super) fn gate(&self, deadline: Option<Instant>) -> Result<Gate, GateError> {
        Gate::sysv(self.id, gate_offset(), self.token, deadline)
    }

    /// Allocate the segment's memory now, so that running out of it is an error here rather
    /// than a SIGBUS at some later first write. `MADV_POPULATE_WRITE` (Linux 5.14) reports a
    /// failure instead of faulting; on older kernels (`EINVAL`) the memory is allocated at
    /// first touch, as the segment's pages always were before.
    fn reserve(&self) -> std::io::Result<()> {
        // SAFETY: the range is this process's attachment of the segment; populating it only
        // allocates the pages (which read as the zeros they already are).
        match unsafe {
            sys::madvise(
                self.attachment.base(),
                self.attachment.len(),
                libc::MADV_POPULATE_WRITE,
            )
        } {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            r => r,
        }
    }

    /// The header of the attachment (at least a header long: checked by `open`, and `create`
    /// makes segments of a channel's length).
    fn header(&self) -> &Header {
        // SAFETY: the attachment is at least a header long (see above) and page-aligned; every
        // header field is an atomic, valid for any bits; the reference does not outlive
        // `self`, which keeps the attachment.
        unsafe { &*self.attachment.base().cast::<Header>() }
    }

    /// Does the key still name this segment?
    pub(super) fn is_named(&self) -> bool {
        sys::shmget(self.key, 0, 0).is_ok_and(|id| id == self.id)
    }

    /// Mark the segment for removal: its key is free at once, the memory goes with the last
    /// detach.
    pub(super) fn remove_name(&self) -> std::io::Result<()> {
        sys::shm_rmid(self.id)
    }
}
