//! POSIX shared memory objects: `shm_open` on `/dev/shm`, `mmap(MAP_SHARED)`, `shm_unlink`.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::time::Instant;

use super::lock::{Gate, GateError};
use super::{Mapping, gate_error, os_error};
use crate::error::Error;
use crate::fork::Guarded;
use crate::options::Backend;
use crate::sys;

pub(super) struct PosixShm {
    pub(super) map: Option<Mapping>,
    /// The descriptor that holds the region's locks (never mapped: see `map_whole`).
    pub(super) fd: Guarded,
    /// `/<name>`, as `shm_open` takes it.
    shm_name: CString,
    /// `/dev/shm/<name>`, to check the name still refers to our object.
    path: CString,
}

fn names(name: &str) -> (CString, CString) {
    // `validate_name` rejected NUL bytes, so these cannot fail.
    let shm = CString::new(format!("/{name}")).expect("name has no NUL");
    let path = CString::new(format!("/dev/shm/{name}")).expect("name has no NUL");
    (shm, path)
}

impl PosixShm {
    /// Create the object exclusively and take its gate; then size, reserve and map it. `Err`
    /// [`Error::AlreadyExists`] if the name exists, or if a reclaimer removed our new object
    /// before we held its gate (it took it for a creator that died).
    pub(super) fn create(
        name: &str,
        len: usize,
        mode: u32,
        deadline: Option<Instant>,
    ) -> Result<(PosixShm, Gate), Error> {
        let (shm_name, path) = names(name);
        let err = |op, e| os_error(op, name, Backend::Posix, e);
        let fd = Guarded::open(|| {
            sys::shm_open(
                &shm_name,
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                mode as libc::mode_t,
            )
        })
        .map_err(|e| err("shm_open (create)", e))?;
        let mut shm = PosixShm {
            map: None,
            fd,
            shm_name,
            path,
        };
        let gate = match Gate::ofd(shm.fd.as_fd(), deadline) {
            Ok(gate) => gate,
            Err(e) => {
                // No lock could be taken at all (no OFD locks here, no descriptors left): our
                // new, empty object goes again. (A holder past the deadline is a reclaimer,
                // which deals with the object itself.)
                if matches!(e, GateError::Io(_)) && shm.is_named() {
                    let _ = sys::shm_unlink(&shm.shm_name);
                }
                return Err(gate_error(e, name, Backend::Posix));
            }
        };
        // Under the gate, the object must be as we made it: still named by us, and still
        // empty. Otherwise a reclaimer took it, between our `O_EXCL` and our gate, for one
        // whose creator died: removed it, or (another user's, in a sticky directory) made it a
        // channel of its own. Either way the name is not ours: `AlreadyExists`, and the caller
        // looks again.
        if !shm.is_named() || sys::fstat(shm.fd.as_fd()).map_or(true, |st| st.st_size != 0) {
            return Err(Error::AlreadyExists {
                name: name.to_owned(),
                backend: Backend::Posix,
            });
        }
        // From here on the name is ours: remove it again if anything fails. The mark first,
        // in one write to the empty object, so that it is never non-empty without it.
        let made = super::mark(&shm.fd, err)
            .and_then(|()| super::size(&shm.fd, len, mode, err))
            .and_then(|()| {
                shm.map()
                    .map_err(|e| err("mmap", e))?
                    .ok_or_else(|| err("mmap", std::io::Error::other("the object is empty")))
            });
        match made {
            Ok(map) => {
                shm.map = Some(map);
                Ok((shm, gate))
            }
            Err(e) => {
                let _ = sys::shm_unlink(&shm.shm_name);
                Err(e)
            }
        }
    }

    /// Open the object, take its gate, and map all of it (lazily: nothing is read or faulted
    /// in until the header is validated). An object smaller than a header is left unmapped.
    pub(super) fn open(name: &str, deadline: Option<Instant>) -> Result<(PosixShm, Gate), Error> {
        let (shm_name, path) = names(name);
        let err = |op, e| os_error(op, name, Backend::Posix, e);
        let fd = Guarded::open(|| sys::shm_open(&shm_name, libc::O_RDWR, 0))
            .map_err(|e| err("open (shm_open)", e))?;
        let gate =
            Gate::ofd(fd.as_fd(), deadline).map_err(|e| gate_error(e, name, Backend::Posix))?;
        let mut shm = PosixShm {
            map: None,
            fd,
            shm_name,
            path,
        };
        shm.map = shm.map().map_err(|e| err("mmap", e))?;
        Ok((shm, gate))
    }

    /// Map all of the object through a new opening of its name (checked to be the same
    /// object; the caller holds the gate, so the name cannot move meanwhile).
    pub(super) fn map(&self) -> std::io::Result<Option<Mapping>> {
        let fresh = sys::shm_open(&self.shm_name, libc::O_RDWR, 0)?;
        super::same_object(&fresh, &self.fd)?;
        super::map_whole(fresh)
    }

    /// The same object through another descriptor and mapping (see `Region::resized`).
    pub(super) fn with_fd(&self, fd: Guarded, map: Option<Mapping>) -> PosixShm {
        PosixShm {
            map,
            fd,
            shm_name: self.shm_name.clone(),
            path: self.path.clone(),
        }
    }

    /// Does the name still refer to this object?
    pub(super) fn is_named(&self) -> bool {
        super::same_file(None, &self.path, &self.fd)
    }

    /// Remove the name (the caller holds the gate and checked [`is_named`](Self::is_named)).
    pub(super) fn remove_name(&self) -> std::io::Result<()> {
        sys::shm_unlink(&self.shm_name)
    }
}
