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
//! **Who may look.** Linux lets any process that may read a segment attach it, even one marked
//! for removal, and an attachment keeps `shm_nattch` above zero: a process that could read a
//! token could keep a dead peer looking alive for as long as it liked. So a token is readable
//! by exactly the users who may read the channel it vouches for, the channel's parties (who
//! can change the channel itself anyway): its owner is this process's user, its group the
//! channel segment's group, its mode owner-read plus the channel's group and other read bits
//! (`0400 | mode & 0044`). A process with channels of several groups or modes has one token
//! for each ([`for_channel`]).
//!
//! A process killed between `shmget` and `IPC_RMID` (two system calls) leaves a 73-byte
//! private segment that nothing attaches; the next process to make a token removes such
//! orphans once they are 10 seconds old ([`sweep`]).

use std::io;

use crate::sys;

/// The token's size: odd enough to tell a token from other private segments.
const TOKEN_BYTES: usize = 73;
/// `SHM_DEST` (`<linux/shm.h>`): the segment is marked for removal at its last detach.
const SHM_DEST: u32 = 0o1000;

/// The permission bits of a token for a channel of permission bits `mode`.
fn token_mode(channel_mode: u32) -> u32 {
    0o400 | (channel_mode & 0o044)
}

/// Tokens this process made: `(fork generation, group, mode, id)`. A token made in another
/// fork generation belongs to an ancestor (the child does not have its attachment).
static TOKENS: std::sync::Mutex<Vec<(u32, u32, u32, u32)>> = std::sync::Mutex::new(Vec::new());

/// This process's token for a channel whose segment has group `gid` and permission bits
/// `mode`, made on first use.
pub(crate) fn for_channel(gid: u32, mode: u32) -> io::Result<u32> {
    let generation = crate::fork::generation();
    let mode = token_mode(mode);
    let find = |list: &[(u32, u32, u32, u32)]| {
        list.iter()
            .find(|t| (t.0, t.1, t.2) == (generation, gid, mode))
            .map(|t| t.3)
    };
    if let Some(id) = find(&TOKENS.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(id);
    }
    // Outside any lock: one `shmctl` per System V segment of the system.
    sweep();
    crate::fork::exclusive(|| {
        let mut list = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = find(&list) {
            return Ok(id);
        }
        let id = make(gid, mode)?;
        list.retain(|t| t.0 == generation); // an ancestor's tokens are of no use here
        list.push((generation, gid, mode, id));
        Ok(id)
    })?
}

/// The token for a segment this process is about to make (its group is our effective group).
pub(crate) fn for_new_segment(mode: u32) -> io::Result<u32> {
    for_channel(sys::getegid(), mode)
}

/// The token for an existing segment `id`, from its group and mode.
pub(crate) fn for_segment(id: libc::c_int) -> io::Result<u32> {
    let ds = sys::shm_stat(id)?;
    for_channel(ds.shm_perm.gid, u32::from(ds.shm_perm.mode) & 0o777)
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
            && mode & 0o733 == 0o400
            && mode & SHM_DEST == 0
            && ds.shm_nattch == 0
            && now.saturating_sub(ds.shm_ctime) > ORPHAN_AGE_SECS;
        if orphan {
            let _ = sys::shm_rmid(id);
        }
    }
}

/// Create (readable by the channel's parties, see the module docs), attach (read-only, not
/// inherited by fork) and mark for removal a token segment.
fn make(gid: u32, mode: u32) -> io::Result<u32> {
    let mut tries = 0;
    let (id, addr) = loop {
        // Owner-read only until the group is set: nobody else may attach it meanwhile.
        let id = sys::shmget(libc::IPC_PRIVATE, TOKEN_BYTES, libc::IPC_CREAT | 0o400)?;
        if let Err(e) = sys::shm_set_group_mode(id, gid, mode) {
            let _ = sys::shm_rmid(id);
            return Err(e);
        }
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
