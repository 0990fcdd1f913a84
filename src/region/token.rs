//! How a process proves to System V peers that it is alive.
//!
//! A System V segment has no file descriptor to hold a lock on, so each process that attaches
//! to a System V channel makes a *token*: a tiny private segment (`IPC_PRIVATE`) that it alone
//! attaches, marked for removal at once (`IPC_RMID`), so the kernel destroys it at its last
//! detach. The kernel detaches every segment of a process when it exits and when it calls
//! `execve`, and `MADV_DONTFORK` keeps the attachment out of forked children. So a peer that
//! asks `shmctl(IPC_STAT)` on the token's id gets an answer with the segment still attached
//! exactly while the process lives (and has not exec'd). Nothing here depends on `/proc` or on
//! pids, so peers in different pid namespaces that share the IPC namespace see each other.
//!
//! The token's id goes into the process's endpoint entries. An id is only reused after the
//! kernel's per-index sequence number wraps; a reused id names a segment that is not a token
//! (no `SHM_DEST`, another size) and reads as dead, or another live token and reads as alive,
//! which never declares a live process dead.
//!
//! A process killed between `shmget` and `IPC_RMID` (two system calls) leaves a 73-byte
//! private segment that nothing attaches; the next process to make a token removes such
//! orphans once they are 10 seconds old ([`sweep`]).

use std::io;

use crate::sync::{AtomicU64, Ordering};
use crate::sys;

/// The token's size: odd enough to tell a token from other private segments.
const TOKEN_BYTES: usize = 73;
/// `SHM_DEST` (`<linux/shm.h>`): the segment is marked for removal at its last detach.
const SHM_DEST: u32 = 0o1000;

/// This process's token: `generation << 32 | (id + 1)`, or 0 before one is made. A token made
/// in another fork generation belongs to an ancestor (the child does not have its attachment).
static TOKEN: AtomicU64 = AtomicU64::new(0);

/// This process's token id, made on first use.
pub(crate) fn mine() -> io::Result<u32> {
    let generation = u64::from(crate::fork::generation());
    // Relaxed: a process-private cache, written under `fork::exclusive` below.
    let t = TOKEN.load(Ordering::Relaxed);
    if t != 0 && t >> 32 == generation {
        return Ok((t as u32) - 1);
    }
    // Outside the fork lock: one `shmctl` per System V segment of the system.
    sweep();
    crate::fork::exclusive(|| {
        let t = TOKEN.load(Ordering::Relaxed);
        if t != 0 && t >> 32 == generation {
            return Ok((t as u32) - 1);
        }
        let id = make()?;
        TOKEN.store(generation << 32 | (u64::from(id) + 1), Ordering::Relaxed);
        Ok(id)
    })?
}

/// How old an unattached, unremoved token segment must be to count as orphaned: its maker
/// attaches it microseconds after creating it, unless it was killed in between.
const ORPHAN_AGE_SECS: libc::time_t = 10;

/// Remove token segments orphaned by a process killed while making one: a token's size and
/// mode, no attachment, not marked for removal, made over [`ORPHAN_AGE_SECS`] ago. Best effort
/// (a segment of another user is not ours to remove).
fn sweep() {
    let Ok(max) = sys::shm_max_index() else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as libc::time_t);
    for index in 0..=max {
        let Ok((id, ds)) = sys::shm_stat_index(index) else {
            continue;
        };
        let mode = u32::from(ds.shm_perm.mode);
        let orphan = ds.shm_segsz == TOKEN_BYTES
            && mode & 0o777 == 0o444
            && mode & SHM_DEST == 0
            && ds.shm_nattch == 0
            && now.saturating_sub(ds.shm_ctime) > ORPHAN_AGE_SECS;
        if orphan {
            let _ = sys::shm_rmid(id);
        }
    }
}

/// Create, attach (read-only, not inherited by fork) and mark for removal a token segment.
fn make() -> io::Result<u32> {
    let mut tries = 0;
    let (id, addr) = loop {
        // 0o444: any user may ask IPC_STAT about it (which needs read permission), so peers
        // of other users can tell this process is alive.
        let id = sys::shmget(libc::IPC_PRIVATE, TOKEN_BYTES, libc::IPC_CREAT | 0o444)?;
        let attached = sys::shmat(id, libc::SHM_RDONLY);
        let _ = sys::shm_rmid(id);
        match attached {
            Ok(addr) => break (id, addr),
            // Removed before we attached it (another process's sweep took it for an orphan,
            // after this process was stopped for seconds in between): make another.
            Err(e) if tries < 3 && matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    };
    // SAFETY: `addr` is the attachment just made, one page long, which nothing in this process
    // reads or writes; keeping it out of forked children changes nothing Rust can observe.
    unsafe { sys::madvise(addr, sys::page_size(), libc::MADV_DONTFORK) }?;
    // The attachment is never detached: it lives as long as the process (or until execve).
    u32::try_from(id).map_err(|_| io::Error::other("shmget returned a negative id"))
}

/// Is the process whose token is `id` alive? False only on proof that it is not: the token is
/// gone, or its id now names a segment that is not a token.
pub(crate) fn alive(id: u32) -> bool {
    let Ok(id) = libc::c_int::try_from(id) else {
        return false; // no segment has such an id: a corrupt entry
    };
    match sys::shm_stat(id) {
        Ok(ds) => {
            let is_token =
                ds.shm_segsz == TOKEN_BYTES && u32::from(ds.shm_perm.mode) & SHM_DEST != 0;
            is_token && ds.shm_nattch > 0
        }
        Err(e) => !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)),
    }
}
