//! POSIX shared memory objects: `shm_open` on `/dev/shm`, `mmap(MAP_SHARED)`, `shm_unlink`.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::time::Instant;

use super::{map_fd, os_error, same_file, wait_for_size};
use crate::error::Error;
use crate::options::Backend;
use crate::sys;

pub(super) struct PosixShm {
    map: memmap2::MmapRaw,
    base: NonNull<u8>,
    fd: OwnedFd,
    /// `/<name>`, as `shm_open` takes it.
    shm_name: CString,
    /// `/dev/shm/<name>`, to check the name still refers to our object before removing it.
    path: CString,
}

fn names(name: &str) -> (CString, CString) {
    // `validate_name` rejected NUL bytes, so these cannot fail.
    let shm = CString::new(format!("/{name}")).expect("name has no NUL");
    let path = CString::new(format!("/dev/shm/{name}")).expect("name has no NUL");
    (shm, path)
}

impl PosixShm {
    pub(super) fn create(name: &str, len: usize, mode: u32) -> Result<PosixShm, Error> {
        let (shm_name, path) = names(name);
        let err = |op, e| os_error(op, name, Backend::Posix, e);
        let fd = sys::shm_open(
            &shm_name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            mode as libc::mode_t,
        )
        .map_err(|e| err("shm_open (create)", e))?;
        // From here on the name exists: remove it again if anything fails.
        match super::size_and_map(&fd, len, mode, err) {
            Ok((map, base)) => Ok(PosixShm {
                map,
                base,
                fd,
                shm_name,
                path,
            }),
            Err(e) => {
                let _ = sys::shm_unlink(&shm_name);
                Err(e)
            }
        }
    }

    pub(super) fn open(name: &str, deadline: Instant) -> Result<PosixShm, Error> {
        let (shm_name, path) = names(name);
        let err = |op, e| os_error(op, name, Backend::Posix, e);
        let fd =
            sys::shm_open(&shm_name, libc::O_RDWR, 0).map_err(|e| err("open (shm_open)", e))?;
        let Some(len) = wait_for_size(&fd, deadline).map_err(|e| err("fstat", e))? else {
            return Err(Error::NotReady {
                name: name.to_owned(),
                backend: Backend::Posix,
                waited: std::time::Duration::ZERO,
            });
        };
        let (map, base) = map_fd(&fd, len).map_err(|e| err("mmap", e))?;
        Ok(PosixShm {
            map,
            base,
            fd,
            shm_name,
            path,
        })
    }

    pub(super) fn base(&self) -> NonNull<u8> {
        self.base
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn remove_name(&self) {
        if same_file(&self.path, &self.fd) {
            let _ = sys::shm_unlink(&self.shm_name);
        }
    }
}
