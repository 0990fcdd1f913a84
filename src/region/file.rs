//! Regions as files: `dir/<name>`, opened `O_NOFOLLOW`, mapped `MAP_SHARED`, removed with
//! `unlink`.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::Instant;

use super::{map_fd, os_error, same_file, wait_for_size};
use crate::error::Error;
use crate::options::Backend;
use crate::sys;

pub(super) struct MappedFile {
    map: memmap2::MmapRaw,
    base: NonNull<u8>,
    fd: OwnedFd,
    path: CString,
}

fn path_of(dir: &Path, name: &str, backend: &Backend) -> Result<CString, Error> {
    CString::new(dir.join(name).as_os_str().as_bytes()).map_err(|_| Error::InvalidOptions {
        reason: format!("the directory of {backend} contains a NUL byte"),
    })
}

impl MappedFile {
    pub(super) fn create(
        dir: &Path,
        name: &str,
        len: usize,
        mode: u32,
    ) -> Result<MappedFile, Error> {
        let backend = Backend::File(dir.to_path_buf());
        let path = path_of(dir, name, &backend)?;
        let err = |op, e| os_error(op, name, backend.clone(), e);
        let fd = sys::open(
            &path,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            mode as libc::mode_t,
        )
        .map_err(|e| err("create (open O_CREAT|O_EXCL)", e))?;
        match super::size_and_map(&fd, len, mode, err) {
            Ok((map, base)) => Ok(MappedFile {
                map,
                base,
                fd,
                path,
            }),
            Err(e) => {
                let _ = sys::unlink(&path);
                Err(e)
            }
        }
    }

    pub(super) fn open(dir: &Path, name: &str, deadline: Instant) -> Result<MappedFile, Error> {
        let backend = Backend::File(PathBuf::from(dir));
        let path = path_of(dir, name, &backend)?;
        let err = |op, e| os_error(op, name, backend.clone(), e);
        let fd = sys::open(&path, libc::O_RDWR | libc::O_NOFOLLOW, 0).map_err(|e| {
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
        let Some(len) = wait_for_size(&fd, deadline).map_err(|e| err("fstat", e))? else {
            return Err(Error::NotReady {
                name: name.to_owned(),
                backend,
                waited: std::time::Duration::ZERO,
            });
        };
        let (map, base) = map_fd(&fd, len).map_err(|e| err("mmap", e))?;
        Ok(MappedFile {
            map,
            base,
            fd,
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
            let _ = sys::unlink(&self.path);
        }
    }
}
