//! Regions as files: `dir/<name>`, opened `O_NOFOLLOW` relative to a descriptor of `dir` (so a
//! later `chdir` changes nothing), mapped `MAP_SHARED`, removed with `unlinkat`.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use super::lock::{Gate, GateError};
use super::{Mapping, gate_error, os_error};
use crate::error::Error;
use crate::fork::Guarded;
use crate::options::Backend;
use crate::sys;

pub(super) struct MappedFile {
    pub(super) map: Option<Mapping>,
    /// The descriptor that holds the region's locks (never mapped: see `map_whole`).
    pub(super) fd: Guarded,
    /// The directory, opened when the region was: names are looked up and removed in it.
    dir: OwnedFd,
    /// The file's name in `dir`.
    name: CString,
}

/// Open the directory of a File backend (a relative path is resolved now, once).
fn open_dir(dir: &Path, name: &str, backend: &Backend) -> Result<(OwnedFd, CString), Error> {
    let nul = || Error::InvalidOptions {
        reason: format!("the directory of {backend} contains a NUL byte"),
    };
    let cdir = CString::new(dir.as_os_str().as_bytes()).map_err(|_| nul())?;
    let fd = sys::openat(None, &cdir, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| os_error("directory lookup", name, backend.clone(), e))?;
    // `validate_name` rejected NUL bytes.
    Ok((fd, CString::new(name).expect("name has no NUL")))
}

impl MappedFile {
    /// As [`PosixShm::create`](super::posix::PosixShm::create), for a file in `dir`.
    pub(super) fn create(
        dir: &Path,
        name: &str,
        len: usize,
        mode: u32,
        deadline: Option<Instant>,
    ) -> Result<(MappedFile, Gate), Error> {
        let backend = Backend::File(dir.to_path_buf());
        let (dirfd, cname) = open_dir(dir, name, &backend)?;
        let err = |op, e| os_error(op, name, backend.clone(), e);
        let fd = Guarded::open(|| {
            sys::openat(
                Some(dirfd.as_fd()),
                &cname,
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                mode as libc::mode_t,
            )
        })
        .map_err(|e| err("create (open O_CREAT|O_EXCL)", e))?;
        let mut file = MappedFile {
            map: None,
            fd,
            dir: dirfd,
            name: cname,
        };
        let gate = match Gate::ofd(file.fd.as_fd(), deadline) {
            Ok(gate) => gate,
            Err(e) => {
                // No lock could be taken at all (no OFD locks here, no descriptors left): our
                // new, empty object goes again. (A holder past the deadline is a reclaimer,
                // which deals with the object itself.)
                if matches!(e, GateError::Io(_)) && file.is_named() {
                    let _ = file.remove_name();
                }
                return Err(gate_error(e, name, backend.clone()));
            }
        };
        // As for POSIX objects: still ours, and still empty.
        if !file.is_named() || sys::fstat(file.fd.as_fd()).map_or(true, |st| st.st_size != 0) {
            return Err(Error::AlreadyExists {
                name: name.to_owned(),
                backend,
            });
        }
        // The mark first, as for POSIX objects.
        let made = super::mark(&file.fd, err)
            .and_then(|()| super::size(&file.fd, len, mode, err))
            .and_then(|()| {
                file.map()
                    .map_err(|e| err("mmap", e))?
                    .ok_or_else(|| err("mmap", std::io::Error::other("the file is empty")))
            });
        match made {
            Ok(map) => {
                file.map = Some(map);
                Ok((file, gate))
            }
            Err(e) => {
                let _ = file.remove_name();
                Err(e)
            }
        }
    }

    /// As [`PosixShm::open`](super::posix::PosixShm::open), for a file in `dir`.
    pub(super) fn open(
        dir: &Path,
        name: &str,
        deadline: Option<Instant>,
    ) -> Result<(MappedFile, Gate), Error> {
        let backend = Backend::File(dir.to_path_buf());
        let (dirfd, cname) = open_dir(dir, name, &backend)?;
        let err = |op, e| os_error(op, name, backend.clone(), e);
        let fd = Guarded::open(|| {
            sys::openat(
                Some(dirfd.as_fd()),
                &cname,
                libc::O_RDWR | libc::O_NOFOLLOW,
                0,
            )
        })
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Incompatible {
                    name: name.to_owned(),
                    backend: backend.clone(),
                    detail: "it is a symbolic link, which shmchan does not follow".into(),
                }
            } else {
                err("open", e)
            }
        })?;
        let st = sys::fstat(fd.as_fd()).map_err(|e| err("fstat", e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::Incompatible {
                name: name.to_owned(),
                backend,
                detail: "it is not a regular file".into(),
            });
        }
        let gate =
            Gate::ofd(fd.as_fd(), deadline).map_err(|e| gate_error(e, name, backend.clone()))?;
        let mut file = MappedFile {
            map: None,
            fd,
            dir: dirfd,
            name: cname,
        };
        file.map = file.map().map_err(|e| err("mmap", e))?;
        Ok((file, gate))
    }

    /// Map all of the file through a new opening of its name (checked to be the same file;
    /// the caller holds the gate, so the name cannot move meanwhile).
    pub(super) fn map(&self) -> std::io::Result<Option<Mapping>> {
        let fresh = sys::openat(
            Some(self.dir.as_fd()),
            &self.name,
            libc::O_RDWR | libc::O_NOFOLLOW,
            0,
        )?;
        super::same_object(&fresh, &self.fd)?;
        super::map_whole(fresh)
    }

    /// The same file through another descriptor and mapping (see `Region::resized`).
    pub(super) fn with_fd(&self, fd: Guarded, map: Option<Mapping>) -> std::io::Result<MappedFile> {
        Ok(MappedFile {
            map,
            fd,
            dir: sys::dup(self.dir.as_fd())?,
            name: self.name.clone(),
        })
    }

    /// Does the name still refer to this file?
    pub(super) fn is_named(&self) -> bool {
        super::same_file(Some(self.dir.as_fd()), &self.name, &self.fd)
    }

    /// Remove the name (the caller holds the gate and checked [`is_named`](Self::is_named)).
    pub(super) fn remove_name(&self) -> std::io::Result<()> {
        sys::unlinkat(Some(self.dir.as_fd()), &self.name)
    }
}
