//! System V shared memory: `shmget` with a key derived from the name, `shmat`, `shmdt`,
//! `shmctl(IPC_RMID)`. The full name lives in the header, so a second name whose key collides
//! is reported by validation instead of joining the wrong channel.

use std::ptr::NonNull;

use super::os_error;
use crate::error::Error;
use crate::layout::{Header, sysv_key};
use crate::options::Backend;
use crate::sys;

pub(super) struct SysVShm {
    id: libc::c_int,
    base: NonNull<u8>,
    len: usize,
}

impl SysVShm {
    pub(super) fn create(name: &str, len: usize, mode: u32) -> Result<SysVShm, Error> {
        let err = |op, e| os_error(op, name, Backend::SysV, e);
        // shmget's mode is not subject to the umask.
        let id = sys::shmget(
            sysv_key(name),
            len,
            libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as libc::c_int,
        )
        .map_err(|e| err("shmget (create)", e))?;
        match Self::attach(id, len) {
            Ok(seg) => {
                seg.reserve();
                Ok(seg)
            }
            Err(e) => {
                let _ = sys::shm_rmid(id);
                Err(err("shmat", e))
            }
        }
    }

    pub(super) fn open(name: &str) -> Result<SysVShm, Error> {
        let err = |op, e| os_error(op, name, Backend::SysV, e);
        let id = sys::shmget(sysv_key(name), 0, 0).map_err(|e| err("open (shmget)", e))?;
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
        Self::attach(id, len).map_err(|e| err("shmat", e))
    }

    fn attach(id: libc::c_int, len: usize) -> std::io::Result<SysVShm> {
        let p = sys::shmat(id)?;
        let base = NonNull::new(p).ok_or_else(|| std::io::Error::other("shmat returned null"))?;
        Ok(SysVShm { id, base, len })
    }

    /// Touch every page now, so the segment's memory is allocated at create rather than at
    /// some later first write.
    fn reserve(&self) {
        let page = sys::page_size();
        for off in (page..self.len).step_by(page) {
            // SAFETY: `page <= off < len`, so the byte is inside the segment this process just
            // attached, and outside the header page. No peer reads slot bytes before the header
            // is published (and ours is not yet), so this write races with nothing. It stores
            // the zero the new segment already holds: it only makes the kernel allocate the page.
            unsafe { self.base.as_ptr().add(off).write_volatile(0) };
        }
    }

    pub(super) fn base(&self) -> NonNull<u8> {
        self.base
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn remove_name(&self) {
        let _ = sys::shm_rmid(self.id);
    }
}

impl Drop for SysVShm {
    fn drop(&mut self) {
        // SAFETY: `base` came from `shmat` and is detached only here; the `Region` that owns
        // this value hands out no reference that outlives it.
        let _ = unsafe { sys::shmdt(self.base.as_ptr()) };
    }
}
