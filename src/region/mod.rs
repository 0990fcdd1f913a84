//! Named blocks of shared memory: create exclusively, open, map, lock, remove the name.
//!
//! [`Region`] is the same for every backend: a mapped block of raw bytes that is unmapped when
//! it is dropped, with the kernel-held locks of `lock.rs` (the gate, and one liveness witness
//! per endpoint). Which backend it sits on matters only here; the header handshake (`chan.rs`)
//! and the ring (`ring/`) see a base pointer and a length. The heap region serves in-process
//! channels, tests and loom.

#[cfg(not(loom))]
mod file;
pub(crate) mod gate_word;
mod heap;
#[cfg(not(loom))]
pub(crate) mod lock;
#[cfg(not(loom))]
mod posix;
#[cfg(not(loom))]
pub(crate) mod sysv;
#[cfg(not(loom))]
mod token;

use std::ptr::NonNull;
#[cfg(not(loom))]
use std::time::Instant;

use crate::error::Error;
use crate::layout::{Geometry, Header, MAX_NAME};
#[cfg(not(loom))]
use crate::options::Backend;
#[cfg(loom)]
use crate::sync::Ordering;

pub(crate) use heap::HeapBlock;
#[cfg(not(loom))]
pub(crate) use lock::{Gate, GateError};

/// A held gate (see `lock.rs`); under loom there is only the heap, which has none.
#[cfg(loom)]
pub(crate) enum Gate {
    Heap,
}

/// Releasing a heap gate does nothing (as in production, where `Gate::Heap` releases nothing).
#[cfg(loom)]
impl Drop for Gate {
    fn drop(&mut self) {}
}

/// A mapped block of shared memory.
pub(crate) struct Region {
    /// Start of the mapping; page-aligned (128-byte aligned at least), valid for `len` bytes
    /// for as long as `owner` lives. Dangling when `len` is 0 (an object too small to map).
    base: NonNull<u8>,
    len: usize,
    owner: Owner,
    /// Loom only: this region's identity as a witness holder (see `HeapBlock::witness`),
    /// unique among the regions of a model.
    #[cfg(loom)]
    id: u32,
}

/// Loom only: a new witness identity for a heap region.
#[cfg(loom)]
fn next_region_id() -> u32 {
    // A process-wide counter, outside the model (only compared for equality within one run).
    #[allow(clippy::disallowed_types)]
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    #[allow(clippy::disallowed_types)]
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What keeps the mapping alive, and the object it maps.
enum Owner {
    #[cfg(not(loom))]
    Posix(posix::PosixShm),
    #[cfg(not(loom))]
    SysV(sysv::SysVShm),
    #[cfg(not(loom))]
    File(file::MappedFile),
    Heap(std::sync::Arc<HeapBlock>),
}

// SAFETY: a `Region` owns its mapping (or shares an `Arc` of a heap block); the raw pointer is
// only an address into it. Concurrent access to the bytes goes through atomics and the ring
// protocol, not through `Region` itself.
unsafe impl Send for Region {}
// SAFETY: as above; `&Region` only hands out the base pointer and the header reference, whose
// fields are all atomics.
unsafe impl Sync for Region {}

/// A mapping going away takes with it the async registrations of words inside it (only a leaked
/// future's can be left: see `reactor::forget_range`). A heap block does the same when it is
/// freed (`HeapBlock`'s `Drop`), not when one of the regions sharing it goes.
#[cfg(not(loom))]
impl Drop for Region {
    fn drop(&mut self) {
        if !matches!(self.owner, Owner::Heap(_)) {
            // Before the fields drop: the owner unmaps the memory after this.
            crate::reactor::forget_range(self.base.as_ptr() as usize, self.len);
        }
    }
}

/// Check a channel name against what every backend accepts.
pub(crate) fn validate_name(name: &str) -> Result<(), Error> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME {
        return bad("it is longer than 200 bytes");
    }
    if name.contains('/') {
        return bad("it contains '/' (a channel name is one path component)");
    }
    if name.contains('\0') {
        return bad("it contains a NUL byte");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not names");
    }
    Ok(())
}

impl Region {
    /// Create the region exclusively and take its gate, then give it `len` zeroed bytes of
    /// reserved memory and map them. On any failure after the name was created, the name is
    /// removed again. `Err(AlreadyExists)` when the name is taken.
    #[cfg(not(loom))]
    pub(crate) fn create(
        name: &str,
        backend: &Backend,
        len: usize,
        mode: u32,
        deadline: Option<Instant>,
    ) -> Result<(Region, Gate), Error> {
        let (owner, gate) = match backend {
            Backend::Posix => {
                let (r, g) = posix::PosixShm::create(name, len, mode, deadline)?;
                (Owner::Posix(r), g)
            }
            Backend::SysV => {
                let (r, g) = sysv::SysVShm::create(name, len, mode, deadline)?;
                (Owner::SysV(r), g)
            }
            Backend::File(dir) => {
                let (r, g) = file::MappedFile::create(dir, name, len, mode, deadline)?;
                (Owner::File(r), g)
            }
        };
        Ok((Region::from_owner(owner), gate))
    }

    /// Open an existing region and take its gate, waiting for it until `deadline`. All of the
    /// object is mapped, lazily (nothing is faulted in: see [`populate`](Self::populate)); an
    /// object smaller than a header is not mapped at all (`len() == 0`).
    #[cfg(not(loom))]
    pub(crate) fn open(
        name: &str,
        backend: &Backend,
        deadline: Option<Instant>,
    ) -> Result<(Region, Gate), Error> {
        let (owner, gate) = match backend {
            Backend::Posix => {
                let (r, g) = posix::PosixShm::open(name, deadline)?;
                (Owner::Posix(r), g)
            }
            Backend::SysV => {
                let (r, g) = sysv::SysVShm::open(name, deadline)?;
                (Owner::SysV(r), g)
            }
            Backend::File(dir) => {
                let (r, g) = file::MappedFile::open(dir, name, deadline)?;
                (Owner::File(r), g)
            }
        };
        Ok((Region::from_owner(owner), gate))
    }

    #[cfg(not(loom))]
    fn from_owner(owner: Owner) -> Region {
        let (base, len) = match &owner {
            Owner::Posix(r) => Mapping::base_len(&r.map),
            Owner::File(r) => Mapping::base_len(&r.map),
            Owner::SysV(r) => (
                NonNull::new(r.attachment.base()).expect("shmat never returns null"),
                r.attachment.len(),
            ),
            Owner::Heap(_) => unreachable!("heap regions are made by Region::heap"),
        };
        Region { base, len, owner }
    }

    /// A region on the heap, for a channel inside one process.
    pub(crate) fn heap(geo: &Geometry) -> Result<Region, Error> {
        let block = std::sync::Arc::new(HeapBlock::new(geo)?);
        Ok(Region {
            base: block.base(),
            len: block.len(),
            owner: Owner::Heap(block),
            #[cfg(loom)]
            id: next_region_id(),
        })
    }

    /// Another handle on the same heap block (in-process channels only).
    pub(crate) fn share_heap(&self) -> Option<Region> {
        match &self.owner {
            Owner::Heap(block) => Some(Region {
                base: self.base,
                len: self.len,
                owner: Owner::Heap(block.clone()),
                #[cfg(loom)]
                id: next_region_id(),
            }),
            #[cfg(not(loom))]
            _ => None,
        }
    }

    /// Is this an in-process (heap) region?
    pub(crate) fn is_heap(&self) -> bool {
        matches!(self.owner, Owner::Heap(_))
    }

    /// Take the gate (see `lock.rs`), waiting until `deadline` (`None`: as long as it takes).
    #[cfg(not(loom))]
    pub(crate) fn gate(&self, deadline: Option<Instant>) -> Result<Gate, GateError> {
        use std::os::fd::AsFd;
        match &self.owner {
            Owner::Posix(r) => Gate::ofd(r.fd.as_fd(), deadline),
            Owner::File(r) => Gate::ofd(r.fd.as_fd(), deadline),
            Owner::SysV(r) => r.gate(deadline),
            Owner::Heap(_) => Ok(Gate::Heap),
        }
    }

    /// Under loom there is only the heap, whose gate is a no-op.
    #[cfg(loom)]
    pub(crate) fn gate(&self, _deadline: Option<std::time::Instant>) -> Result<Gate, ()> {
        Ok(Gate::Heap)
    }

    /// Does the region's name still refer to this object? (Checked under the gate before
    /// removing the name.) Heap regions have no name: false.
    pub(crate) fn is_named(&self) -> bool {
        match &self.owner {
            #[cfg(not(loom))]
            Owner::Posix(r) => r.is_named(),
            #[cfg(not(loom))]
            Owner::SysV(r) => r.is_named(),
            #[cfg(not(loom))]
            Owner::File(r) => r.is_named(),
            Owner::Heap(_) => false,
        }
    }

    /// Remove the region's name from the system (the memory goes when the last mapping does).
    /// The caller holds the gate; the name is only removed if it still refers to this object.
    pub(crate) fn remove_name(&self) -> std::io::Result<()> {
        if !self.is_named() {
            return Ok(());
        }
        match &self.owner {
            #[cfg(not(loom))]
            Owner::Posix(r) => r.remove_name(),
            #[cfg(not(loom))]
            Owner::SysV(r) => r.remove_name(),
            #[cfg(not(loom))]
            Owner::File(r) => r.remove_name(),
            Owner::Heap(_) => Ok(()),
        }
    }

    /// This process's liveness token for the region's endpoint entries (`lock.rs`): the System
    /// V token id; 0 for the other backends, whose witness is a lock on the entry's own byte.
    pub(crate) fn token(&self) -> std::io::Result<u32> {
        match &self.owner {
            #[cfg(not(loom))]
            Owner::SysV(r) => Ok(r.token),
            _ => Ok(0),
        }
    }

    /// Start witnessing that endpoint entry `i` is held by this process (before claiming it).
    /// `Ok(false)` if another process holds that entry's witness.
    pub(crate) fn hold_endpoint(&self, i: usize) -> std::io::Result<bool> {
        match &self.owner {
            #[cfg(not(loom))]
            Owner::Posix(r) => lock_byte(&r.fd, lock::endpoint_byte(i), true),
            #[cfg(not(loom))]
            Owner::File(r) => lock_byte(&r.fd, lock::endpoint_byte(i), true),
            // AcqRel: as an OFD lock, taking it is ordered after the last holder's release.
            #[cfg(loom)]
            Owner::Heap(block) => Ok(block
                .witness(i)
                .compare_exchange(0, self.id, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()),
            #[cfg(not(loom))]
            _ => {
                let _ = i;
                Ok(true)
            }
        }
    }

    /// Stop witnessing entry `i` (a claim that failed, or a handle that detached).
    pub(crate) fn release_endpoint(&self, i: usize) {
        match &self.owner {
            #[cfg(not(loom))]
            Owner::Posix(r) => drop(lock_byte(&r.fd, lock::endpoint_byte(i), false)),
            #[cfg(not(loom))]
            Owner::File(r) => drop(lock_byte(&r.fd, lock::endpoint_byte(i), false)),
            // Release: pairs with the next holder's AcqRel.
            #[cfg(loom)]
            Owner::Heap(block) => {
                let _ = block.witness(i).compare_exchange(
                    self.id,
                    0,
                    Ordering::Release,
                    Ordering::Relaxed,
                );
            }
            #[cfg(not(loom))]
            _ => {
                let _ = i;
            }
        }
    }

    /// Is the process holding endpoint entry `i` (whose word carries `token`) alive? False
    /// only on the kernel's word that it is not (`lock.rs`); an error asking counts as alive.
    pub(crate) fn endpoint_alive(&self, i: usize, token: u32) -> bool {
        match &self.owner {
            #[cfg(not(loom))]
            Owner::Posix(r) => ofd_endpoint_alive(std::os::fd::AsFd::as_fd(&r.fd), i),
            #[cfg(not(loom))]
            Owner::File(r) => ofd_endpoint_alive(std::os::fd::AsFd::as_fd(&r.fd), i),
            #[cfg(not(loom))]
            Owner::SysV(_) => sysv_token_alive(token),
            // In one process nobody dies alone; loom models "kill" an occupant by a flag.
            #[cfg(not(loom))]
            Owner::Heap(_) => {
                let _ = (i, token);
                true
            }
            // Held by another region (as the kernel answers `F_OFD_GETLK` about other open
            // file descriptions only).
            #[cfg(loom)]
            Owner::Heap(block) => {
                let _ = token;
                // Acquire: pairs with the Release of `loom_kill` and `release_endpoint`.
                let w = block.witness(i).load(Ordering::Acquire);
                w != 0 && w != self.id
            }
        }
    }

    /// Loom only: what a process's death does to the kernel's word on place `i` (its witness
    /// is released); the endpoint table still says attached until a peer probes it.
    #[cfg(loom)]
    pub(crate) fn loom_kill(&self, i: usize) {
        match &self.owner {
            // Release: what the "dead" occupant did happens before a prober's verdict.
            Owner::Heap(block) => block.witness(i).store(0, Ordering::Release),
        }
    }

    /// Fault in the first `len` bytes now (after validation), so the first messages do not
    /// pay for page faults. Best effort: a kernel without `MADV_POPULATE_WRITE` (before 5.14)
    /// faults them in later.
    pub(crate) fn populate(&self, len: usize) {
        #[cfg(not(loom))]
        if !self.is_heap() && len > 0 && len <= self.len {
            // SAFETY: the range lies in this region's mapping; populating changes no byte.
            let _ =
                unsafe { crate::sys::madvise(self.base.as_ptr(), len, libc::MADV_POPULATE_WRITE) };
        }
        #[cfg(loom)]
        let _ = len;
    }

    /// What the object's first bytes say it is (see [`Mark`](crate::layout::Mark)): read with
    /// `pread` for POSIX and File objects (which may be smaller than a header, or shrink under
    /// us), from the attachment for System V segments (never smaller than a header here).
    #[cfg(not(loom))]
    pub(crate) fn mark(&self) -> crate::layout::Mark {
        use crate::layout::{MARK_BYTES, Mark};
        use std::os::fd::AsFd;
        let of_fd = |fd: &crate::fork::Guarded| {
            let mut b = [0u8; MARK_BYTES];
            match crate::sys::pread(fd.as_fd(), &mut b, 0) {
                Ok(n) => Mark::of(&b[..n]),
                Err(e) => Mark::Foreign(format!("its first bytes could not be read: {e}")),
            }
        };
        match &self.owner {
            Owner::Posix(r) => of_fd(&r.fd),
            Owner::File(r) => of_fd(&r.fd),
            Owner::SysV(_) => match self.try_header() {
                Some(hdr) => Mark::of_header(hdr),
                None => Mark::Foreign("smaller than a shmchan header".into()),
            },
            Owner::Heap(_) => Mark::Ours,
        }
    }

    /// Length of the mapping in bytes (0 for an object too small to hold a header).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The header at offset 0, if the mapping holds one.
    pub(crate) fn try_header(&self) -> Option<&Header> {
        #[cfg(loom)]
        return Some(self.header());
        #[cfg(not(loom))]
        (self.len >= size_of::<Header>()).then(|| self.header())
    }

    /// The header at offset 0 (on every send and receive: inlined).
    ///
    /// # Panics
    /// If the region is too small to hold one; every channel's region is checked for that
    /// before a header is asked for ([`try_header`](Self::try_header)).
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        match &self.owner {
            #[cfg(loom)]
            Owner::Heap(block) => block.header(),
            #[cfg(not(loom))]
            _ => {
                assert!(
                    self.len >= size_of::<Header>(),
                    "region too small for a header"
                );
                // SAFETY: `len >= size_of::<Header>()` (checked above), and `base` is
                // page-aligned, which satisfies `Header`'s 128-byte alignment. Every field of
                // `Header` is an atomic integer, for which any bit pattern (including zero) is
                // valid, and all access to them is atomic, so other processes writing the same
                // memory concurrently cause no undefined behaviour. The reference lives no
                // longer than `self`, which keeps the mapping alive.
                unsafe { self.base.cast::<Header>().as_ref() }
            }
        }
    }

    /// Pointer to slot 0 for a geometry that [`Header::validate`] (or the creator) checked
    /// against this region's length.
    pub(crate) fn slots(&self, geo: &Geometry) -> NonNull<u8> {
        assert!(
            geo.region_len <= self.len,
            "geometry was not validated against the region"
        );
        match &self.owner {
            #[cfg(loom)]
            Owner::Heap(block) => block.slots(),
            #[cfg(not(loom))]
            _ => {
                // SAFETY: `slots_offset < region_len <= len`, so the result stays inside the
                // mapping and is not null.
                unsafe { self.base.add(geo.slots_offset) }
            }
        }
    }

    /// Zero the first `len` bytes but the mark and the header's `life` line (a closed
    /// channel's object about to be used anew; the caller holds the gate, whose System V word
    /// lives in that line, and no endpoint is alive). The mark stays, so that a process killed
    /// meanwhile leaves a half-made channel of ours, not an object nobody may reclaim.
    #[cfg(not(loom))]
    pub(crate) fn zero(&self, len: usize) {
        let len = len.min(self.len);
        let mark = crate::layout::MARK_BYTES;
        let life = core::mem::offset_of!(Header, life);
        let after = life + crate::layout::LINE;
        for (start, end) in [(mark.min(len), life.min(len)), (after.min(len), len)] {
            // SAFETY: in bounds of the mapping. Nobody else uses these bytes: the channel was
            // closed under the gate we hold, with every endpoint gone, and a new one is
            // published only after this. A hostile process writing them meanwhile changes only
            // values.
            unsafe { std::ptr::write_bytes(self.base.as_ptr().add(start), 0, end - start) }
        }
    }

    /// Owner uid and permission bits of the object (for messages and the reuse check).
    #[cfg(not(loom))]
    pub(crate) fn owner_and_mode(&self) -> Option<(u32, u32)> {
        use std::os::fd::AsFd;
        match &self.owner {
            Owner::Posix(r) => crate::sys::fstat(r.fd.as_fd())
                .ok()
                .map(|st| (st.st_uid, st.st_mode & 0o777)),
            Owner::File(r) => crate::sys::fstat(r.fd.as_fd())
                .ok()
                .map(|st| (st.st_uid, st.st_mode & 0o777)),
            Owner::SysV(r) => crate::sys::shm_stat(r.id)
                .ok()
                .map(|ds| (ds.shm_perm.uid, u32::from(ds.shm_perm.mode) & 0o777)),
            Owner::Heap(_) => None,
        }
    }

    /// Give the object `len` bytes of reserved memory (a closed channel used anew) and map
    /// them as a new region; the gate stays held (it belongs to the object, not the mapping).
    /// System V segments cannot change size: one smaller than `len` is an error.
    #[cfg(not(loom))]
    pub(crate) fn resized(
        &self,
        name: &str,
        backend: &Backend,
        len: usize,
    ) -> Result<Region, Error> {
        use std::os::fd::AsFd;
        let err = |op, e| os_error(op, name, backend.clone(), e);
        // The new region locks through a duplicate of our locking descriptor (the same open
        // file description, so the gate we hold stays held) and maps through a new opening.
        let reserve = |fd: &crate::fork::Guarded| -> Result<crate::fork::Guarded, Error> {
            crate::sys::ftruncate(fd.as_fd(), len as u64).map_err(|e| err("ftruncate", e))?;
            crate::sys::posix_fallocate(fd.as_fd(), len as u64)
                .map_err(|e| err("posix_fallocate (reserving the region's memory)", e))?;
            crate::fork::Guarded::open(|| crate::sys::dup(fd.as_fd())).map_err(|e| err("dup", e))
        };
        match &self.owner {
            Owner::Posix(r) => {
                let fd = reserve(&r.fd)?;
                let map = r.map().map_err(|e| err("mmap", e))?;
                let shm = r.with_fd(fd, map);
                Ok(Region::from_owner(Owner::Posix(shm)))
            }
            Owner::File(r) => {
                let fd = reserve(&r.fd)?;
                let map = r.map().map_err(|e| err("mmap", e))?;
                let file = r.with_fd(fd, map).map_err(|e| err("dup", e))?;
                Ok(Region::from_owner(Owner::File(file)))
            }
            Owner::SysV(r) => {
                if r.attachment.len() < len {
                    return Err(Error::Incompatible {
                        name: name.to_owned(),
                        backend: backend.clone(),
                        detail: format!(
                            "a closed channel's segment of {} bytes is still there (only its \
                             owner or root can remove it), too small for {len} bytes",
                            r.attachment.len()
                        ),
                    });
                }
                let attachment = sysv::Attachment::new(r.id).map_err(|e| err("shmat", e))?;
                Ok(Region::from_owner(Owner::SysV(sysv::SysVShm {
                    id: r.id,
                    key: r.key,
                    attachment,
                    token: r.token,
                })))
            }
            Owner::Heap(_) => unreachable!("heap regions are never reused"),
        }
    }

    /// A broadcast topic's control line, after the header, for a geometry validated against
    /// this region.
    pub(crate) fn control(&self, geo: &Geometry) -> &crate::layout::Control {
        assert!(
            geo.kind == crate::layout::Kind::Broadcast && geo.region_len <= self.len,
            "a broadcast geometry validated against the region"
        );
        match &self.owner {
            #[cfg(loom)]
            Owner::Heap(block) => block.control(),
            #[cfg(not(loom))]
            _ => {
                // SAFETY: a broadcast geometry puts a line for the control and one per
                // subscriber between the header and the slots, inside `region_len <= len`
                // (asserted); the base is page-aligned, so the line is 128-aligned; every
                // field is an atomic, valid for any bits; the reference lives no longer than
                // `self`.
                unsafe {
                    &*self
                        .base
                        .as_ptr()
                        .add(size_of::<Header>())
                        .cast::<crate::layout::Control>()
                }
            }
        }
    }

    /// Broadcast subscriber line `i` (of place `1 + i`), as [`control`](Self::control).
    pub(crate) fn sub(&self, geo: &Geometry, i: usize) -> &crate::layout::Sub {
        assert!(i < geo.max_receivers as usize);
        let _ = self.control(geo); // the same checks
        match &self.owner {
            #[cfg(loom)]
            Owner::Heap(block) => block.sub(i),
            #[cfg(not(loom))]
            _ => {
                // SAFETY: as in `control`: line `1 + i` after the header is subscriber `i`'s,
                // and `i < max_receivers` (asserted) keeps it before the slots.
                unsafe {
                    &*self
                        .base
                        .as_ptr()
                        .add(size_of::<Header>() + crate::layout::LINE * (1 + i))
                        .cast::<crate::layout::Sub>()
                }
            }
        }
    }

    /// Word `i` of the payload of broadcast slot `slot` (loom only; in production the words
    /// are the slot's bytes).
    #[cfg(loom)]
    pub(crate) fn slot_word(&self, slot: usize, i: usize) -> &crate::sync::AtomicU64 {
        match &self.owner {
            Owner::Heap(block) => block.word(slot, i),
        }
    }

    /// The stamp of MPMC slot `i` (loom only; in production it is the slot's first word).
    #[cfg(loom)]
    pub(crate) fn slot_stamp(&self, i: usize) -> &crate::sync::AtomicU64 {
        match &self.owner {
            Owner::Heap(block) => block.stamp(i),
        }
    }

    /// Causality tracking for slot `i` (loom only).
    #[cfg(loom)]
    pub(crate) fn slot_track(&self, i: usize) -> &crate::sync::SlotTrack {
        match &self.owner {
            Owner::Heap(block) => block.track(i),
        }
    }
}

/// Is the holder of endpoint entry `i` of the POSIX or File region open on `fd` alive (its
/// witness lock held)? `fd` may be read-only: it only asks (`F_OFD_GETLK`). An error asking
/// counts as alive: a live process is never declared dead.
#[cfg(not(loom))]
pub(crate) fn ofd_endpoint_alive(fd: std::os::fd::BorrowedFd<'_>, i: usize) -> bool {
    crate::sys::ofd_write_locked(fd, lock::endpoint_byte(i)).unwrap_or(true)
}

/// Does some process hold the gate of the POSIX or File region open on `fd` (a creator that has
/// not published yet, or an open or close in progress)? Only asks; an error counts as held.
#[cfg(not(loom))]
pub(crate) fn ofd_gate_held(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    crate::sys::ofd_write_locked(fd, lock::GATE_BYTE).unwrap_or(true)
}

/// Is the process whose System V liveness token is `token` alive (`token.rs`)?
#[cfg(not(loom))]
pub(crate) fn sysv_token_alive(token: u32) -> bool {
    token::alive(token)
}

/// Does a live process hold a System V gate word holding `word` (0: free)?
#[cfg(not(loom))]
pub(crate) fn sysv_gate_held(word: u64) -> bool {
    word != 0 && u32::try_from(word - 1).is_ok_and(token::alive)
}

/// Take (`lock`) or release a one-byte OFD lock on `fd`.
#[cfg(not(loom))]
fn lock_byte(fd: &crate::fork::Guarded, byte: u64, lock: bool) -> std::io::Result<bool> {
    use crate::sys::LockKind;
    let kind = if lock {
        LockKind::Write
    } else {
        LockKind::Unlock
    };
    crate::sys::ofd_setlk(std::os::fd::AsFd::as_fd(fd), byte, kind)
}

/// A shared read-write mapping of a file or POSIX object.
#[cfg(not(loom))]
pub(crate) struct Mapping(memmap2::MmapRaw);

#[cfg(not(loom))]
impl Mapping {
    /// Base and length of an optional mapping (dangling and 0 when there is none).
    fn base_len(m: &Option<Mapping>) -> (NonNull<u8>, usize) {
        match m {
            Some(m) => (
                NonNull::new(m.0.as_mut_ptr()).expect("mmap never returns null"),
                m.0.len(),
            ),
            None => (NonNull::dangling(), 0),
        }
    }
}

/// Turn an `io::Error` from creating or opening into the matching [`Error`].
#[cfg(not(loom))]
fn os_error(op: &'static str, name: &str, backend: Backend, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EEXIST) => Error::AlreadyExists {
            name: name.to_owned(),
            backend,
        },
        Some(libc::ENOENT) if op.starts_with("open") => Error::NotFound {
            name: name.to_owned(),
            backend,
        },
        _ => Error::Io {
            op,
            name: name.to_owned(),
            backend,
            source: e,
        },
    }
}

/// Turn a failure to take a gate into an [`Error`]: a holder that keeps it is a creator that
/// has not finished (or an operation that is stuck).
#[cfg(not(loom))]
fn gate_error(e: GateError, name: &str, backend: Backend) -> Error {
    match e {
        GateError::Timeout => Error::NotReady {
            name: name.to_owned(),
            backend,
            waited: std::time::Duration::ZERO,
        },
        GateError::Io(e) => os_error("lock the region (F_OFD_SETLK)", name, backend, e),
    }
}

/// Mark a file or POSIX object just created exclusively (and still empty, under our gate) as
/// a shmchan channel being made: its first bytes, in one write (see `layout::Mark`).
#[cfg(not(loom))]
fn mark(
    fd: &crate::fork::Guarded,
    err: impl Fn(&'static str, std::io::Error) -> Error,
) -> Result<(), Error> {
    use std::os::fd::AsFd;
    crate::sys::pwrite_all(fd.as_fd(), &crate::layout::Mark::bytes(), 0)
        .map_err(|e| err("pwrite (marking the new object as a shmchan channel)", e))
}

/// Finish a file or POSIX object just created exclusively: set its mode exactly (the umask
/// applied at creation), give it `len` bytes and reserve them (so a full filesystem is an error
/// now rather than a SIGBUS later). The caller removes the name if this fails.
#[cfg(not(loom))]
fn size(
    fd: &crate::fork::Guarded,
    len: usize,
    mode: u32,
    err: impl Fn(&'static str, std::io::Error) -> Error,
) -> Result<(), Error> {
    use std::os::fd::AsFd;
    crate::sys::fchmod(fd.as_fd(), mode as libc::mode_t).map_err(|e| err("fchmod", e))?;
    crate::sys::ftruncate(fd.as_fd(), len as u64).map_err(|e| err("ftruncate", e))?;
    crate::sys::posix_fallocate(fd.as_fd(), len as u64)
        .map_err(|e| err("posix_fallocate (reserving the region's memory)", e))
}

/// Check that `fresh` (just opened by name) is the object `held` is open on.
#[cfg(not(loom))]
fn same_object(fresh: &std::os::fd::OwnedFd, held: &crate::fork::Guarded) -> std::io::Result<()> {
    use std::os::fd::AsFd;
    let (a, b) = (
        crate::sys::fstat(fresh.as_fd())?,
        crate::sys::fstat(held.as_fd())?,
    );
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) {
        Ok(())
    } else {
        Err(std::io::Error::other(
            "the name now refers to another object",
        ))
    }
}

/// Map all of the object behind `fd`, shared and read-write, without faulting anything in;
/// `None` if it is smaller than a header (nothing to map yet, or not a channel).
///
/// `fd` is a descriptor of its own, opened for this mapping and closed once it is made: a
/// mapping keeps its open file description alive (also in a forked child, which inherits the
/// mapping), so it must never be the description that holds the region's locks
/// (`lock.rs`), or a child would keep its parent's endpoints alive.
#[cfg(not(loom))]
fn map_whole(fd: std::os::fd::OwnedFd) -> std::io::Result<Option<Mapping>> {
    use std::os::fd::AsFd;
    let st = crate::sys::fstat(fd.as_fd())?;
    let size = usize::try_from(st.st_size).unwrap_or(0);
    if size < size_of::<Header>() {
        return Ok(None);
    }
    let map = memmap2::MmapOptions::new()
        .len(size)
        .map_raw(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
    Ok(Some(Mapping(map)))
}

/// Is the name `path` in `dir` (`None`: an absolute path) still the file we hold open?
#[cfg(not(loom))]
fn same_file(
    dir: Option<std::os::fd::BorrowedFd<'_>>,
    path: &std::ffi::CStr,
    fd: &crate::fork::Guarded,
) -> bool {
    use std::os::fd::AsFd;
    match (
        crate::sys::fstatat(dir, path),
        crate::sys::fstat(fd.as_fd()),
    ) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}
