//! Thin wrappers over the system calls shmchan makes: one function per call, errno turned into
//! `io::Error` at the call site, file descriptors owned (`OwnedFd`) as soon as they exist.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Open or create a POSIX shared memory object.
///
/// # References
/// `shm_open(3)`
pub(crate) fn shm_open(name: &CStr, oflag: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = cvt(unsafe { libc::shm_open(name.as_ptr(), oflag | libc::O_CLOEXEC, mode) })?;
    // SAFETY: `fd` was just returned by `shm_open` and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Remove a POSIX shared memory object's name.
///
/// # References
/// `shm_unlink(3)`
pub(crate) fn shm_unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    cvt(unsafe { libc::shm_unlink(name.as_ptr()) }).map(drop)
}

/// Open a file relative to a directory descriptor (`None`: the current directory).
///
/// # References
/// `openat(2)`
pub(crate) fn openat(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    oflag: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `path` is a valid NUL-terminated string and `dirfd` a live descriptor (or
    // AT_FDCWD); `mode` is passed as the variadic argument `openat` reads with `O_CREAT`.
    let fd = cvt(unsafe {
        libc::openat(
            dirfd,
            path.as_ptr(),
            oflag | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: `fd` was just returned by `openat` and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Set a file's permission bits (not subject to the umask, unlike the mode given at creation).
///
/// # References
/// `fchmod(2)`
pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: plain system call on a live descriptor.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

/// Set a file's length.
///
/// # References
/// `ftruncate(2)`
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain system call on a live descriptor.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len) }).map(drop)
}

/// Reserve backing store for `[0, len)` so later page faults cannot fail with SIGBUS.
///
/// # References
/// `posix_fallocate(3)` (returns the error number instead of setting errno)
pub(crate) fn posix_fallocate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        // SAFETY: plain library call on a live descriptor.
        match unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, len) } {
            0 => return Ok(()),
            libc::EINTR => continue,
            err => return Err(io::Error::from_raw_os_error(err)),
        }
    }
}

/// File status of an open descriptor.
///
/// # References
/// `fstat(2)`
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of one `stat`, which the call fills on success.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: `fstat` returned 0, so it initialised `st`.
    Ok(unsafe { st.assume_init() })
}

/// Read up to `buf.len()` bytes at `offset` of a file or shared memory object, without moving
/// its offset; returns how many (fewer at its end). A read past the end of an object another
/// process shrank returns what is there, never a SIGBUS (as a load from a mapping would).
///
/// # References
/// `pread(2)`
pub(crate) fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let offset =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Write all of `buf` at `offset` of a file or shared memory object (extending it if needed),
/// without moving its offset.
///
/// # References
/// `pwrite(2)`
pub(crate) fn pwrite_all(fd: BorrowedFd<'_>, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), off) };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            0 => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            n => {
                buf = &buf[n as usize..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Status of a name in a directory (`None`: the current directory), not following a final
/// symbolic link.
///
/// # References
/// `fstatat(2)` with `AT_SYMLINK_NOFOLLOW`
pub(crate) fn fstatat(dir: Option<BorrowedFd<'_>>, path: &CStr) -> io::Result<libc::stat> {
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated, `dirfd` live (or AT_FDCWD); `st` is valid for writes
    // of one `stat`.
    cvt(unsafe {
        libc::fstatat(
            dirfd,
            path.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: `fstatat` returned 0, so it initialised `st`.
    Ok(unsafe { st.assume_init() })
}

/// Remove a name from a directory (`None`: the current directory).
///
/// # References
/// `unlinkat(2)`
pub(crate) fn unlinkat(dir: Option<BorrowedFd<'_>>, path: &CStr) -> io::Result<()> {
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `path` is a valid NUL-terminated string, `dirfd` live (or AT_FDCWD).
    cvt(unsafe { libc::unlinkat(dirfd, path.as_ptr(), 0) }).map(drop)
}

/// A new descriptor for the same open file description, close-on-exec.
///
/// # References
/// `fcntl(2)` with `F_DUPFD_CLOEXEC`
pub(crate) fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: plain system call on a live descriptor.
    let new = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `new` was just returned by `fcntl` and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Make descriptor number `to` refer to what `from` refers to (closing what `to` referred
/// to), close-on-exec. Async-signal-safe: called in a fork child handler.
///
/// # References
/// `dup3(2)`
pub(crate) fn dup3_raw(from: libc::c_int, to: libc::c_int) -> libc::c_int {
    // SAFETY: plain system call on descriptor numbers; the caller owns `to`.
    unsafe { libc::dup3(from, to, libc::O_CLOEXEC) }
}

/// An event counter descriptor (used as an inert placeholder), close-on-exec.
///
/// # References
/// `eventfd(2)`
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call, no pointers.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by `eventfd` and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Kinds of open-file-description lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockKind {
    /// A write (exclusive) lock.
    Write,
    /// Release.
    Unlock,
}

fn flock_struct(kind: libc::c_short, byte: u64) -> io::Result<libc::flock> {
    let start =
        libc::off_t::try_from(byte).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `flock` is plain data; all-zero is a valid value (and l_pid must be 0 for OFD
    // locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = 1;
    Ok(fl)
}

/// Take (without waiting) or release an open-file-description lock on one byte. Returns
/// `Ok(false)` if another open file description holds a conflicting lock. The lock belongs to
/// the open file description: the kernel releases it when the last descriptor referring to it
/// is closed, at exit, or at `execve` for a close-on-exec descriptor.
///
/// # References
/// `fcntl(2)`, "Open file description locks": `F_OFD_SETLK`
pub(crate) fn ofd_setlk(fd: BorrowedFd<'_>, byte: u64, kind: LockKind) -> io::Result<bool> {
    let t = match kind {
        LockKind::Write => libc::F_WRLCK,
        LockKind::Unlock => libc::F_UNLCK,
    };
    let fl = flock_struct(t as libc::c_short, byte)?;
    // SAFETY: `fl` is a valid `flock` for the duration of the call.
    match cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) }) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Does another open file description hold a write lock on this byte?
///
/// # References
/// `fcntl(2)`, `F_OFD_GETLK` (asked as a read lock, so that a descriptor opened read-only
/// can ask too: only write locks conflict with it)
pub(crate) fn ofd_write_locked(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let mut fl = flock_struct(libc::F_RDLCK as libc::c_short, byte)?;
    // SAFETY: `fl` is a valid `flock`, which F_OFD_GETLK overwrites in place.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Give advice about a range of this process's memory.
///
/// # Safety
/// `[addr, addr + len)` must be memory this process mapped, and the advice must not break
/// what other code expects of it (`MADV_DONTFORK` and `MADV_POPULATE_WRITE` change nothing
/// that Rust can observe in this process).
///
/// # References
/// `madvise(2)`
pub(crate) unsafe fn madvise(addr: *mut u8, len: usize, advice: libc::c_int) -> io::Result<()> {
    // SAFETY: per the caller's contract.
    cvt(unsafe { libc::madvise(addr.cast(), len, advice) }).map(drop)
}

/// Get (or create, with `IPC_CREAT`) a System V shared memory segment.
///
/// # References
/// `shmget(2)`
pub(crate) fn shmget(key: libc::key_t, size: usize, flags: libc::c_int) -> io::Result<libc::c_int> {
    // SAFETY: plain system call, no pointers.
    cvt(unsafe { libc::shmget(key, size, flags) })
}

/// Attach a System V segment (read-write, or read-only with `SHM_RDONLY` in `flags`) at an
/// address the kernel picks.
///
/// # References
/// `shmat(2)`
pub(crate) fn shmat(id: libc::c_int, flags: libc::c_int) -> io::Result<*mut u8> {
    // SAFETY: a null address lets the kernel choose a free range; nothing in this process is
    // overwritten.
    let p = unsafe { libc::shmat(id, std::ptr::null(), flags) };
    if p as isize == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// Detach a System V segment.
///
/// # Safety
/// `addr` must be an address returned by [`shmat`] that is still attached, and no reference
/// into the segment may be used afterwards.
///
/// # References
/// `shmdt(2)`
pub(crate) unsafe fn shmdt(addr: *mut u8) -> io::Result<()> {
    // SAFETY: the caller guarantees `addr` is a live attachment nobody uses any more.
    cvt(unsafe { libc::shmdt(addr.cast()) }).map(drop)
}

/// Status of a System V segment.
///
/// # References
/// `shmctl(2)` with `IPC_STAT`
pub(crate) fn shm_stat(id: libc::c_int) -> io::Result<libc::shmid_ds> {
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::uninit();
    // SAFETY: `ds` is valid for writes of one `shmid_ds`, which IPC_STAT fills.
    cvt(unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: the call returned 0, so it initialised `ds`.
    Ok(unsafe { ds.assume_init() })
}

/// Set the group and permission bits of System V segment `id` (its owner uid unchanged). The
/// caller must own or have created it.
///
/// # References
/// `shmctl(2)` with `IPC_SET`
pub(crate) fn shm_set_group_mode(id: libc::c_int, gid: u32, mode: u32) -> io::Result<()> {
    let mut ds = shm_stat(id)?;
    ds.shm_perm.gid = gid;
    ds.shm_perm.mode = (mode & 0o777) as _;
    // SAFETY: `ds` is a valid `shmid_ds` (from IPC_STAT), read by IPC_SET.
    cvt(unsafe { libc::shmctl(id, libc::IPC_SET, &mut ds) }).map(drop)
}

/// The effective group id of this process.
///
/// # References
/// `getegid(2)`
pub(crate) fn getegid() -> u32 {
    // SAFETY: plain system call, cannot fail.
    unsafe { libc::getegid() }
}

/// The highest index in use in the kernel's System V segment table (for [`shm_stat_index`]).
///
/// # References
/// `shmctl(2)` with `IPC_INFO`
pub(crate) fn shm_max_index() -> io::Result<libc::c_int> {
    // `IPC_INFO` fills a `struct shminfo` (nine longs), smaller than a `shmid_ds`.
    let mut buf = std::mem::MaybeUninit::<libc::shmid_ds>::uninit();
    // SAFETY: `buf` is valid for writes of a `shmid_ds`, larger than the `shminfo` written.
    cvt(unsafe { libc::shmctl(0, libc::IPC_INFO, buf.as_mut_ptr()) })
}

/// The segment at `index` of the kernel's table: its id and status.
///
/// # References
/// `shmctl(2)` with `SHM_STAT`
pub(crate) fn shm_stat_index(index: libc::c_int) -> io::Result<(libc::c_int, libc::shmid_ds)> {
    const SHM_STAT: libc::c_int = 13; // <linux/shm.h>
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::uninit();
    // SAFETY: `ds` is valid for writes of one `shmid_ds`, which SHM_STAT fills.
    let id = cvt(unsafe { libc::shmctl(index, SHM_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: the call succeeded, so it initialised `ds`.
    Ok((id, unsafe { ds.assume_init() }))
}

/// Mark a System V segment for removal: its key is free at once, the memory goes with the
/// last detach.
///
/// # References
/// `shmctl(2)` with `IPC_RMID`
pub(crate) fn shm_rmid(id: libc::c_int) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no buffer.
    cvt(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// Sleep while the 32-bit word at `word` holds `expected`, for at most `timeout` (forever if
/// `None`). Returns on a wake, a timeout, a signal, or at once if the word differs; the caller
/// re-checks its condition in every case. The futex is *shared* (no `FUTEX_PRIVATE_FLAG`): the
/// kernel keys it by the backing page, so a waker in another process that maps the same memory
/// finds it.
///
/// # Safety
/// `word` must point to a 4-byte aligned `u32` that stays mapped during the call.
///
/// # References
/// `futex(2)`, `FUTEX_WAIT`
pub(crate) unsafe fn futex_wait(word: *const u32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the caller keeps `word` mapped and aligned; `ts_ptr` is null or points to a
    // timespec that outlives the call. Every outcome (EAGAIN, ETIMEDOUT, EINTR, a wake) is
    // handled by the caller's re-check, so the result is not needed.
    unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAIT, expected, ts_ptr) };
}

/// Wake every thread sleeping in [`futex_wait`] on `word`, in any process.
///
/// # Safety
/// `word` must point to a 4-byte aligned `u32` that stays mapped during the call.
///
/// # References
/// `futex(2)`, `FUTEX_WAKE`
pub(crate) unsafe fn futex_wake(word: *const u32) {
    // SAFETY: the caller keeps `word` mapped and aligned; FUTEX_WAKE only reads the address to
    // find the wait queue.
    unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAKE, i32::MAX) };
}

/// One word for [`futex_waitv`]: `struct futex_waitv` of the kernel's UAPI.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FutexWaitv {
    /// The value the word must hold for the call to sleep.
    pub(crate) val: u64,
    /// The word's address.
    pub(crate) uaddr: u64,
    /// `FUTEX2_SIZE_U32` (a 32-bit word), shared (no `FUTEX2_PRIVATE`).
    pub(crate) flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`.
const FUTEX2_SIZE_U32: u32 = 0x02;

impl FutexWaitv {
    /// Wait on the shared 32-bit word at `addr` while it holds `expected`.
    pub(crate) fn shared_u32(addr: usize, expected: u32) -> FutexWaitv {
        FutexWaitv {
            val: u64::from(expected),
            uaddr: addr as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        }
    }
}

/// Most words one [`futex_waitv`] call takes (`FUTEX_WAITV_MAX`).
pub(crate) const FUTEX_WAITV_MAX: usize = 128;

/// Sleep until one of `words` is woken, or until `deadline` (`CLOCK_MONOTONIC`, absolute;
/// `None`: no limit). Returns the index of the word that was woken. Fails with `EAGAIN` if a
/// word did not hold its value when the call began (which one is not said), `ETIMEDOUT`,
/// `EINTR`, `EFAULT` if a word is not mapped (nothing is written through any of them), and
/// `ENOSYS` before Linux 5.16.
///
/// The kernel only reads the words, and only through checked user accesses: an address that is
/// no longer mapped gives `EFAULT`, never a fault in this process.
///
/// # References
/// `futex_waitv(2)` (Linux 5.16, `Documentation/userspace-api/futex2.rst`)
pub(crate) fn futex_waitv(
    words: &[FutexWaitv],
    deadline: Option<libc::timespec>,
) -> io::Result<usize> {
    let ts_ptr = deadline
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `words` is a live array of `words.len()` `struct futex_waitv`s (at most
    // FUTEX_WAITV_MAX, checked by the kernel), `ts_ptr` null or a timespec that outlives the
    // call. The kernel reads the words' addresses with checked accesses (EFAULT if unmapped).
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            words.as_ptr(),
            words.len() as libc::c_uint,
            0 as libc::c_uint,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Does the shared 32-bit word at `addr` still hold `expected`? Asked of the kernel
/// (`FUTEX_WAIT` with a zero timeout: `ETIMEDOUT` means it does, `EAGAIN` that it does not),
/// so that the caller never dereferences an address whose mapping may be gone: `Err(EFAULT)`
/// then, nothing else.
///
/// # References
/// `futex(2)`, `FUTEX_WAIT`
pub(crate) fn futex_holds(addr: usize, expected: u32) -> io::Result<bool> {
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: the kernel reads the word at `addr` with a checked access (EFAULT if it is
        // not mapped) and writes nothing; `zero` outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                addr as *const u32,
                libc::FUTEX_WAIT,
                expected,
                &zero as *const libc::timespec,
            )
        };
        if r == 0 {
            return Ok(true); // woken in that instant: it held the value when the call began
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ETIMEDOUT) => return Ok(true),
            Some(libc::EAGAIN) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// `CLOCK_MONOTONIC` now.
///
/// # References
/// `clock_gettime(2)`
pub(crate) fn monotonic_now() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes of one timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

/// `CLOCK_MONOTONIC_COARSE` now, in nanoseconds: the time of the kernel's last tick, read
/// from the vDSO without the time counter (cheaper than [`monotonic_now`], and as coarse as a
/// tick). For pacing intervals of tens of milliseconds.
///
/// # References
/// `clock_gettime(2)`
pub(crate) fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes of one timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } != 0 {
        // Exists since Linux 2.6.32, but a sandbox may refuse it: the precise clock then (a
        // clock stuck at 0 would never make a probe due).
        ts = monotonic_now();
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}

/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED`: a full memory barrier on every running thread of every
/// process registered with [`MEMBARRIER_REGISTER_GLOBAL_EXPEDITED`].
pub(crate) const MEMBARRIER_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
/// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`.
pub(crate) const MEMBARRIER_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// Issue a `membarrier` command.
///
/// # References
/// `membarrier(2)`
pub(crate) fn membarrier(cmd: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call; the commands used take no pointers.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The real user id of this process.
///
/// # References
/// `getuid(2)`
pub(crate) fn getuid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}
