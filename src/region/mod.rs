//! Named blocks of shared memory: create exclusively, open, map, remove the name.
//!
//! [`Region`] is the same for every backend: a mapped, sized block of raw bytes that is unmapped
//! when it is dropped. Which backend it sits on matters only here; the header handshake
//! (`chan.rs`) and the ring (`ring/`) see a base pointer and a length. The heap region serves
//! in-process channels, tests and loom.

#[cfg(not(loom))]
mod file;
mod heap;
#[cfg(not(loom))]
mod posix;
#[cfg(not(loom))]
mod sysv;

use std::ptr::NonNull;
use std::time::Instant;

use crate::error::Error;
use crate::layout::{Geometry, Header, MAX_NAME};
use crate::options::Backend;

pub(crate) use heap::HeapBlock;

/// A mapped block of shared memory.
pub(crate) struct Region {
    /// Start of the mapping; page-aligned (128-byte aligned at least), valid for `len` bytes
    /// for as long as `owner` lives.
    base: NonNull<u8>,
    len: usize,
    owner: Owner,
}

/// What keeps the mapping alive and how to remove the region's name.
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
    /// Create the region exclusively, reserve `len` bytes of memory for it, and map it. The
    /// memory is zeroed. On any failure after the name was created, the name is removed again.
    #[cfg(not(loom))]
    pub(crate) fn create(
        name: &str,
        backend: &Backend,
        len: usize,
        mode: u32,
    ) -> Result<Region, Error> {
        let (base, len, owner) = match backend {
            Backend::Posix => {
                let r = posix::PosixShm::create(name, len, mode)?;
                (r.base(), len, Owner::Posix(r))
            }
            Backend::SysV => {
                let r = sysv::SysVShm::create(name, len, mode)?;
                (r.base(), len, Owner::SysV(r))
            }
            Backend::File(dir) => {
                let r = file::MappedFile::create(dir, name, len, mode)?;
                (r.base(), len, Owner::File(r))
            }
        };
        Ok(Region { base, len, owner })
    }

    /// Open an existing region and map all of it, waiting until `deadline` for its creator
    /// to give it at least a header's worth of bytes.
    #[cfg(not(loom))]
    pub(crate) fn open(name: &str, backend: &Backend, deadline: Instant) -> Result<Region, Error> {
        let (base, len, owner) = match backend {
            Backend::Posix => {
                let r = posix::PosixShm::open(name, deadline)?;
                (r.base(), r.len(), Owner::Posix(r))
            }
            Backend::SysV => {
                let r = sysv::SysVShm::open(name)?;
                (r.base(), r.len(), Owner::SysV(r))
            }
            Backend::File(dir) => {
                let r = file::MappedFile::open(dir, name, deadline)?;
                (r.base(), r.len(), Owner::File(r))
            }
        };
        Ok(Region { base, len, owner })
    }

    /// A region on the heap, for a channel inside one process.
    pub(crate) fn heap(geo: &Geometry) -> Region {
        let block = std::sync::Arc::new(HeapBlock::new(geo));
        Region {
            base: block.base(),
            len: block.len(),
            owner: Owner::Heap(block),
        }
    }

    /// Another handle on the same heap block (in-process channels only).
    pub(crate) fn share_heap(&self) -> Option<Region> {
        match &self.owner {
            Owner::Heap(block) => Some(Region {
                base: self.base,
                len: self.len,
                owner: Owner::Heap(block.clone()),
            }),
            #[cfg(not(loom))]
            _ => None,
        }
    }

    /// Remove the region's name from the system (the memory goes when the last mapping does).
    /// Errors are ignored: the name may already be gone.
    pub(crate) fn remove_name(&self) {
        match &self.owner {
            #[cfg(not(loom))]
            Owner::Posix(r) => r.remove_name(),
            #[cfg(not(loom))]
            Owner::SysV(r) => r.remove_name(),
            #[cfg(not(loom))]
            Owner::File(r) => r.remove_name(),
            Owner::Heap(_) => {}
        }
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The header at offset 0.
    pub(crate) fn header(&self) -> &Header {
        match &self.owner {
            #[cfg(loom)]
            Owner::Heap(block) => block.header(),
            #[cfg(not(loom))]
            _ => {
                debug_assert!(self.len >= size_of::<Header>());
                // SAFETY: every constructor guarantees `len >= size_of::<Header>()` (create
                // sizes the region for a whole geometry; open checks the size before mapping
                // and waits for a header's worth of bytes), and `base` is page-aligned, which
                // satisfies `Header`'s 128-byte alignment. Every field of `Header` is an atomic
                // integer, for which any bit pattern (including zero) is valid, and all access
                // to them is atomic, so other processes writing the same memory concurrently
                // cause no undefined behaviour. The reference lives no longer than `self`,
                // which keeps the mapping alive.
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

/// Sleep a little while polling for something another process is doing.
#[cfg(not(loom))]
fn poll_pause() {
    std::thread::sleep(std::time::Duration::from_millis(1));
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

/// Finish a file or POSIX object just created exclusively: set its mode exactly (the umask
/// applied at creation), give it `len` bytes, reserve them (so a full filesystem is an error
/// now rather than a SIGBUS later) and map them. The caller removes the name if this fails.
#[cfg(not(loom))]
fn size_and_map(
    fd: &std::os::fd::OwnedFd,
    len: usize,
    mode: u32,
    err: impl Fn(&'static str, std::io::Error) -> Error,
) -> Result<(memmap2::MmapRaw, NonNull<u8>), Error> {
    use std::os::fd::AsFd;
    crate::sys::fchmod(fd.as_fd(), mode as libc::mode_t).map_err(|e| err("fchmod", e))?;
    crate::sys::ftruncate(fd.as_fd(), len as u64).map_err(|e| err("ftruncate", e))?;
    crate::sys::posix_fallocate(fd.as_fd(), len as u64)
        .map_err(|e| err("posix_fallocate (reserving the region's memory)", e))?;
    map_fd(fd, len).map_err(|e| err("mmap", e))
}

/// Map `len` bytes of `fd` shared and read-write, pre-faulting the pages.
#[cfg(not(loom))]
fn map_fd(
    fd: &std::os::fd::OwnedFd,
    len: usize,
) -> std::io::Result<(memmap2::MmapRaw, NonNull<u8>)> {
    let map = memmap2::MmapOptions::new()
        .len(len)
        .populate()
        .map_raw(fd)?;
    let base = NonNull::new(map.as_mut_ptr())
        .ok_or_else(|| std::io::Error::other("mmap returned null"))?;
    Ok((map, base))
}

/// Wait until the object behind `fd` is at least a header long (its creator sizes it right
/// after creating it), then return its size.
#[cfg(not(loom))]
fn wait_for_size(fd: &std::os::fd::OwnedFd, deadline: Instant) -> std::io::Result<Option<usize>> {
    use std::os::fd::AsFd;
    loop {
        let st = crate::sys::fstat(fd.as_fd())?;
        let size = usize::try_from(st.st_size).unwrap_or(0);
        if size >= size_of::<Header>() {
            return Ok(Some(size));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        poll_pause();
    }
}

/// Is the path still the file we hold open? (Compared before removing a name, so that a
/// region created anew under the same name by someone else is left alone.)
#[cfg(not(loom))]
fn same_file(path: &std::ffi::CStr, fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsFd;
    match (crate::sys::lstat(path), crate::sys::fstat(fd.as_fd())) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}
