//! Shared helpers for the integration tests: unique names, every backend, child processes
//! (this test binary re-executed), and cleanup that runs even when a test fails.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]
// Test helpers are not crate code checked by loom; plain std atomics are right here.
#![allow(clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmchan::{Backend, Options};

/// The test message: `check` is derived from `seq`, so a torn or garbled message is detected.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Msg {
    pub seq: u64,
    pub check: u64,
}

impl Msg {
    pub fn new(seq: u64) -> Msg {
        Msg {
            seq,
            check: seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef,
        }
    }
    pub fn is_intact(&self) -> bool {
        *self == Msg::new(self.seq)
    }
}

/// A test frame for broadcast frame topics: its sequence number (8 bytes, little-endian),
/// then bytes derived from it, 8 to `max` bytes in all ([`topic_frame_len`]), so a torn,
/// garbled or misplaced frame is detected.
pub fn topic_frame(seq: u64, max: usize, out: &mut Vec<u8>) {
    let len = topic_frame_len(seq, max);
    out.clear();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend((8..len).map(|k| topic_frame_byte(seq, k)));
}

fn topic_frame_len(seq: u64, max: usize) -> usize {
    8 + (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 33) as usize % (max - 7)
}

fn topic_frame_byte(seq: u64, k: usize) -> u8 {
    (seq as u8) ^ (k as u8).wrapping_mul(31)
}

/// The sequence number of a whole [`topic_frame`], or `None` if it is torn.
pub fn topic_frame_seq(f: &[u8], max: usize) -> Option<u64> {
    let seq = u64::from_le_bytes(f.get(..8)?.try_into().ok()?);
    (f.len() == topic_frame_len(seq, max)
        && f[8..]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == topic_frame_byte(seq, i + 8)))
    .then_some(seq)
}

/// A 4 KiB test message for loans: every word is derived from `seq`, so a torn, garbled or
/// half-written message is detected.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Big {
    pub seq: u64,
    pub body: [u64; 511],
}

impl Big {
    /// Fill `self` in place (as a loan is filled) for `seq`.
    pub fn fill(&mut self, seq: u64) {
        self.seq = seq;
        for (i, w) in self.body.iter_mut().enumerate() {
            *w = Big::word(seq, i);
        }
    }
    pub fn new(seq: u64) -> Big {
        let mut b = bytemuck::Zeroable::zeroed();
        Big::fill(&mut b, seq);
        b
    }
    fn word(seq: u64, i: usize) -> u64 {
        (seq ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).rotate_left(i as u32 % 64)
    }
    pub fn is_intact(&self) -> bool {
        self.body
            .iter()
            .enumerate()
            .all(|(i, w)| *w == Big::word(self.seq, i))
    }
}

/// Before these messages, a loan test sender takes a loan, writes it (seq `u64::MAX`) and drops
/// it: an abandoned loan, never to be delivered.
pub fn abandoned(seq: u64) -> bool {
    seq % 7 == 3
}

/// The length of frame `seq` for a channel whose largest frame is `max`: 0, `max`, and small
/// and large lengths in between, from a fixed sequence (sender and receiver compute the same).
pub fn frame_len(seq: u64, max: usize) -> usize {
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 32;
    match seq % 10 {
        0 => 0,
        1 => max,
        2..=5 => (x % 64) as usize % (max + 1),
        _ => (x % (max as u64 + 1)) as usize,
    }
}

/// Fill `buf` with frame `seq`'s bytes: derived from `seq` and the position, so a torn, short,
/// shifted or misordered frame is detected.
pub fn fill_frame(seq: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) >> 2) as u8 ^ (i as u8);
    }
}

/// Is `frame` frame `seq` of a channel whose largest frame is `max`?
pub fn frame_is(seq: u64, max: usize, frame: &[u8]) -> bool {
    let mut want = vec![0u8; frame_len(seq, max)];
    fill_frame(seq, &mut want);
    frame == want.as_slice()
}

/// The frame the reattach tests send for `seq`: its number, then `seq % 57` bytes derived
/// from it (so a torn or short frame is detected).
pub fn frame_msg(seq: u64) -> Vec<u8> {
    let mut f = seq.to_le_bytes().to_vec();
    f.extend((0..seq % 57).map(|i| (seq as u8) ^ (i as u8)));
    f
}

/// The number of a frame made by [`frame_msg`], if it is one.
pub fn frame_seq(f: &[u8]) -> Option<u64> {
    let seq = u64::from_le_bytes(f.get(..8)?.try_into().ok()?);
    (frame_msg(seq) == f).then_some(seq)
}

/// A receiver of any kind, for the reattach tests' children.
pub enum AnyReceiver {
    Spsc(shmchan::spsc::Receiver<Msg>),
    Mpmc(shmchan::mpmc::Receiver<Msg>),
    Frame(shmchan::frame::Receiver),
    Pipe(shmchan::pipe::Reader),
}

impl AnyReceiver {
    pub fn open(kind: &str, name: &str, opts: &Options) -> AnyReceiver {
        match kind {
            "spsc" => AnyReceiver::Spsc(shmchan::spsc::Receiver::open(name, opts).unwrap()),
            "mpmc" => AnyReceiver::Mpmc(shmchan::mpmc::Receiver::open(name, opts).unwrap()),
            "frame" => AnyReceiver::Frame(shmchan::frame::Receiver::open(name, opts).unwrap()),
            "pipe" => AnyReceiver::Pipe(shmchan::pipe::Reader::open(name, opts).unwrap()),
            k => panic!("kind {k}"),
        }
    }

    /// Receive one message in place, print `GOT <seq>`, then free it (so a kill between the
    /// print and the free leaves it to be delivered again). `None` once disconnected.
    pub fn recv_printing(&mut self) -> Option<()> {
        let seq = match self {
            AnyReceiver::Spsc(rx) => {
                let r = rx.recv_ref().ok()?;
                assert!(r.is_intact(), "torn {:?}", *r);
                println!("GOT {}", r.seq);
                return Some(());
            }
            AnyReceiver::Mpmc(rx) => {
                let r = rx.recv_ref().ok()?;
                assert!(r.is_intact(), "torn {:?}", *r);
                println!("GOT {}", r.seq);
                return Some(());
            }
            AnyReceiver::Frame(rx) => {
                let f = rx.recv().ok()?;
                let seq = frame_seq(&f).expect("an intact frame");
                println!("GOT {seq}");
                return Some(());
            }
            AnyReceiver::Pipe(r) => {
                use std::io::BufRead;
                let n = r.fill_buf().ok()?.len();
                if n == 0 {
                    return None;
                }
                n
            }
        };
        println!("GOT {seq}");
        Some(())
    }
}

/// A sender of kind spsc or frame, for the reattach tests' children.
pub enum AnySender {
    Spsc(shmchan::spsc::Sender<Msg>),
    Frame(shmchan::frame::Sender),
}

impl AnySender {
    pub fn open(kind: &str, name: &str, opts: &Options) -> AnySender {
        match kind {
            "spsc" => AnySender::Spsc(shmchan::spsc::Sender::open(name, opts).unwrap()),
            "frame" => AnySender::Frame(shmchan::frame::Sender::open(name, opts).unwrap()),
            k => panic!("kind {k}"),
        }
    }

    /// Send message `seq`; false if there is no receiver now.
    pub fn send(&mut self, seq: u64) -> bool {
        match self {
            AnySender::Spsc(tx) => tx.send(Msg::new(seq)).is_ok(),
            AnySender::Frame(tx) => tx.send(&frame_msg(seq)).is_ok(),
        }
    }

    /// Wait (up to 10 s) for a receiver to attach.
    pub fn wait_for_peer(&self) -> Result<(), shmchan::WaitForPeerError> {
        let t = Duration::from_secs(10);
        match self {
            AnySender::Spsc(tx) => tx.wait_for_peer(t),
            AnySender::Frame(tx) => tx.wait_for_peer(t),
        }
    }
}

/// Byte `i` of the test stream the pipe tests send.
pub fn stream_byte(i: u64) -> u8 {
    (i.wrapping_mul(131) ^ (i >> 10) ^ (i >> 21)) as u8
}

/// A channel name used by no other test, in this run or a concurrent one.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmchan-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory for the File backend, private to one test; removed (with anything left in it)
/// when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &PathBuf {
        &self.0
    }
    pub fn backend(&self) -> Backend {
        Backend::File(self.0.clone())
    }
}

impl Drop for TempDir {
    /// Removed even when a process the test started (already killed) had a file in it being
    /// written as the listing ran: `remove_dir_all` fails with "directory not empty" when a
    /// file appears after it listed the directory, so it is tried again; a directory that still
    /// cannot be removed is named on standard error, with what is in it.
    fn drop(&mut self) {
        let mut last = None;
        for _ in 0..50 {
            match std::fs::remove_dir_all(&self.0) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let left: Vec<_> = std::fs::read_dir(&self.0)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        eprintln!(
            "cannot remove the test directory {}: {:?}; it holds {left:?}",
            self.0.display(),
            last
        );
    }
}

pub fn file_dir() -> TempDir {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("shmchan-test-dir-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// Every backend, for `for backend in backends()`; the File backend's directory lives as long
/// as the loop.
pub fn backends() -> Backends {
    let dir = file_dir();
    Backends {
        list: vec![Backend::Posix, Backend::SysV, dir.backend()].into_iter(),
        _dir: dir,
    }
}

pub struct Backends {
    list: std::vec::IntoIter<Backend>,
    _dir: TempDir,
}

impl Iterator for Backends {
    type Item = Backend;
    fn next(&mut self) -> Option<Backend> {
        self.list.next()
    }
}

pub fn encode(b: &Backend) -> String {
    match b {
        Backend::Posix => "posix".into(),
        Backend::SysV => "sysv".into(),
        Backend::File(d) => format!("file:{}", d.display()),
    }
}

pub fn decode(s: &str) -> Backend {
    match s {
        "posix" => Backend::Posix,
        "sysv" => Backend::SysV,
        f => Backend::File(PathBuf::from(f.strip_prefix("file:").expect("backend"))),
    }
}

/// Does a region named `name` exist on `backend`?
pub fn exists(name: &str, backend: &Backend) -> bool {
    match backend {
        Backend::Posix => std::path::Path::new("/dev/shm").join(name).exists(),
        // SAFETY: plain system call; size 0 and no flags only looks the key up.
        Backend::SysV => (unsafe { libc::shmget(Backend::sysv_key(name), 0, 0) }) != -1,
        Backend::File(dir) => dir.join(name).symlink_metadata().is_ok(),
    }
}

/// Remove whatever is left of region `name` (used by [`Cleanup`], whether or not the test
/// passed).
pub fn remove(name: &str, backend: &Backend) {
    match backend {
        Backend::Posix => {
            let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(name));
        }
        Backend::SysV => {
            // SAFETY: plain system calls on a segment id we just looked up.
            unsafe {
                let id = libc::shmget(Backend::sysv_key(name), 0, 0);
                if id != -1 {
                    libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                }
            }
        }
        Backend::File(dir) => {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
}

/// Write raw bytes as a region on the given backend (a region some other program made).
pub fn plant(name: &str, backend: &Backend, bytes: &[u8]) {
    match backend {
        Backend::Posix => {
            std::fs::write(std::path::Path::new("/dev/shm").join(name), bytes).unwrap()
        }
        Backend::File(dir) => std::fs::write(dir.join(name), bytes).unwrap(),
        Backend::SysV => {
            // SAFETY: create a fresh segment of `bytes.len()` bytes, attach it, copy the bytes
            // in, detach.
            unsafe {
                let id = libc::shmget(
                    Backend::sysv_key(name),
                    bytes.len(),
                    libc::IPC_CREAT | 0o600,
                );
                assert!(id >= 0);
                let p = libc::shmat(id, std::ptr::null(), 0);
                assert_ne!(p as isize, -1);
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len());
                libc::shmdt(p);
            }
        }
    }
}

/// Every byte of region `name` as it is now (read without attaching: a copy of the file, or
/// of a System V segment attached read-only).
pub fn region_bytes(name: &str, backend: &Backend) -> Vec<u8> {
    match backend {
        Backend::Posix => std::fs::read(std::path::Path::new("/dev/shm").join(name)).unwrap(),
        Backend::File(dir) => std::fs::read(dir.join(name)).unwrap(),
        Backend::SysV => {
            // SAFETY: attach the segment read-only and copy its bytes out, then detach.
            unsafe {
                let id = libc::shmget(Backend::sysv_key(name), 0, 0);
                assert!(id >= 0, "no segment for {name}");
                let mut ds: libc::shmid_ds = std::mem::zeroed();
                assert_eq!(libc::shmctl(id, libc::IPC_STAT, &mut ds), 0);
                let p = libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY);
                assert_ne!(p as isize, -1);
                let v = std::slice::from_raw_parts(p.cast::<u8>(), ds.shm_segsz).to_vec();
                libc::shmdt(p);
                v
            }
        }
    }
}

/// The mark every shmchan creator writes first (magic, then the layout version),
/// little-endian: what makes an object a channel of ours, possibly a half-made one.
pub fn mark() -> Vec<u8> {
    let mut m = b"SHMCHAN\x01".to_vec();
    m.extend_from_slice(&shmchan::inspect::LAYOUT_VERSION.to_le_bytes());
    m
}

/// `len` bytes of a channel whose creator died after marking it and before publishing it.
pub fn half_made(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[..12].copy_from_slice(&mark());
    b
}

/// Removes the region when dropped, so a failing test leaves nothing behind.
pub struct Cleanup(pub String, pub Backend);

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove(&self.0, &self.1);
    }
}

/// Assert that the name is gone from the system (the last handle detached).
pub fn assert_gone(name: &str, backend: &Backend) {
    assert!(
        !exists(name, backend),
        "{name} is still present on {backend} after every handle detached"
    );
}

/// A child process running this test binary's `child_main` in a given role. Killed and reaped
/// when dropped.
pub struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// Start a child in `role` on channel `name`, with extra environment variables.
pub fn spawn(role: &str, name: &str, backend: &Backend, env: &[(&str, String)]) -> Peer {
    spawn_via(&[], None, role, name, backend, env)
}

/// As [`spawn`], but started through `wrapper` (a command line that ends by executing the rest
/// of its arguments: `unshare ...`, `sh -c '...; exec "$0" "$@"'`), and as user `uid` (with
/// group `uid`) if given.
pub fn spawn_via(
    wrapper: &[&str],
    uid: Option<u32>,
    role: &str,
    name: &str,
    backend: &Backend,
    env: &[(&str, String)],
) -> Peer {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    if let Some(uid) = uid {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(uid);
    }
    cmd.args([
        "--ignored",
        "--exact",
        "child_main",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env("SHMCHAN_TEST_ROLE", role)
    .env("SHMCHAN_TEST_NAME", name)
    .env("SHMCHAN_TEST_BACKEND", encode(backend))
    .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child");
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Peer { child, lines }
}

impl Peer {
    /// The child's process id (of the wrapper, for a wrapped child).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait (at most `timeout`) for a line starting with `token`; returns the rest of it.
    pub fn expect_line(&self, token: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(token) => return l[token.len()..].trim().to_owned(),
                Ok(_) => {}
                Err(e) => panic!("child did not print {token:?} within {timeout:?}: {e:?}"),
            }
        }
    }

    /// The next line the child prints, waiting at most `timeout`; `None` once its output is
    /// closed (it exited or was killed, and every line was read).
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => Some(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("child printed nothing within {timeout:?}")
            }
        }
    }

    /// Every line the child prints until its output is closed (call after it exited or was
    /// killed).
    pub fn rest(&self, timeout: Duration) -> Vec<String> {
        std::iter::from_fn(|| self.next_line(timeout)).collect()
    }

    /// Kill with SIGKILL, without reaping: the child stays a zombie until [`Peer::reap`].
    pub fn kill9(&mut self) {
        // SAFETY: plain system call on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
    }

    /// Wait for the child to exit (at most `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "child did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait for the child and assert it succeeded.
    pub fn assert_success(&mut self, timeout: Duration) {
        let st = self.wait(timeout);
        assert!(st.success(), "child failed: {st}");
    }

    pub fn reap(&mut self) {
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why namespace tests cannot run here (`None`: they can): they need root and `unshare`.
pub fn namespaces_unavailable() -> Option<String> {
    // SAFETY: plain system call.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    match Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
    {
        Ok(st) if st.success() => None,
        Ok(st) => Some(format!(
            "`unshare --pid --fork --mount-proc true` failed: {st}"
        )),
        Err(e) => Some(format!("cannot run unshare: {e}")),
    }
}

/// The System V liveness tokens (73-byte segments, `region/token.rs`) made by process `pid`,
/// as `/proc/sysvipc/shm` lists them: their ids.
pub fn sysv_tokens_of(pid: u32) -> Vec<i32> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // key shmid perms size cpid ...
            (f.len() > 4 && f[3] == "73" && f[4] == pid.to_string()).then(|| f[1].parse().unwrap())
        })
        .collect()
}

/// Why tests as other users cannot run here (`None`: they can).
pub fn other_users_unavailable() -> Option<String> {
    // SAFETY: plain system call.
    (unsafe { libc::geteuid() } != 0).then(|| "not running as root".into())
}

/// A `File` backend directory that any user may create files in, sticky like `/tmp` and
/// `/dev/shm` (a file there can only be removed by its owner or root).
pub fn shared_file_dir() -> TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = file_dir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// System CPU time this thread has used so far (time spent in system calls).
pub fn thread_system_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `ru` is valid for writes of one rusage, which getrusage fills.
    let ru = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()), 0);
        ru.assume_init()
    };
    Duration::new(ru.ru_stime.tv_sec as u64, ru.ru_stime.tv_usec as u32 * 1000)
}

/// The one-letter state of process `pid` from `/proc/<pid>/stat` (`Z` for a zombie).
pub fn proc_state(pid: u32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Make this process's main thread exit (the raw `exit` system call, on the main thread, from
/// a signal handler) while the calling thread goes on: the thread-group leader becomes a
/// zombie (`Z` in `/proc/<pid>/stat`) though the process is alive.
pub fn exit_main_thread() {
    extern "C" fn handler(_: libc::c_int) {
        // SAFETY: exits only the calling thread (the main thread): async-signal-safe, and
        // no Rust code runs on that thread again.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
    }
    // SAFETY: installs a handler for SIGUSR1 (nothing else in the test child uses it) and sends
    // it to the main thread (whose tid is the pid).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        let pid = libc::getpid();
        assert_eq!(libc::syscall(libc::SYS_tgkill, pid, pid, libc::SIGUSR1), 0);
    }
    let me = std::process::id();
    while proc_state(me) != Some('Z') {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Forbid `membarrier(2)` in this process (it fails with `ENOSYS`), as a seccomp profile may.
pub fn forbid_membarrier() {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
    const ERRNO: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        f(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        f(JEQ_K, 0, 1, libc::SYS_membarrier as u32),
        f(RET_K, 0, 0, ERRNO | libc::ENOSYS as u32),
        f(RET_K, 0, 0, ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points to a valid filter for the duration of the calls.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog),
            0
        );
        assert_eq!(
            libc::syscall(libc::SYS_membarrier, 0, 0, 0),
            -1,
            "membarrier still works"
        );
    }
}

pub fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flag(key: &str) -> bool {
    std::env::var(key).is_ok_and(|v| v == "1")
}

fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// CPU time (user + system) this process has used so far.
pub fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `ru` is valid for writes of one rusage, which getrusage fills.
    let ru = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()), 0);
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The child side. Does nothing unless started by [`spawn`].
/// Batch sizes the slice tests cycle through: single messages, odd sizes, more than a ring
/// of 256 holds.
pub const BATCH_SIZES: [usize; 6] = [1, 7, 64, 300, 13, 1000];

pub fn child_main() {
    let Ok(role) = std::env::var("SHMCHAN_TEST_ROLE") else {
        return;
    };
    let name = std::env::var("SHMCHAN_TEST_NAME").unwrap();
    let opts = Options::new()
        .backend(decode(&std::env::var("SHMCHAN_TEST_BACKEND").unwrap()))
        .capacity(env_u64("SHMCHAN_TEST_CAP", 1024) as usize);
    let n = env_u64("SHMCHAN_TEST_N", 0);
    let create = flag("SHMCHAN_TEST_CREATE");
    match role.as_str() {
        // Send 0..n; then hang (to be killed) or exit (dropping the sender).
        "send" => {
            let tx = if create {
                shmchan::spsc::Sender::<Msg>::create(&name, &opts).unwrap()
            } else {
                shmchan::spsc::Sender::<Msg>::open(&name, &opts).unwrap()
            };
            println!("READY");
            for i in 0..n {
                tx.send(Msg::new(i)).unwrap();
            }
            println!("SENT");
            if flag("SHMCHAN_TEST_HANG") {
                hang();
            }
        }
        // Open the sender and send 0..n with `send_slice`, in batches of varying sizes (some
        // larger than the ring), then exit.
        "send-slices" => {
            let tx = shmchan::spsc::Sender::<Msg>::open(&name, &opts).unwrap();
            println!("READY");
            let all: Vec<Msg> = (0..n).map(Msg::new).collect();
            let mut sent = 0;
            for size in BATCH_SIZES.iter().cycle() {
                let end = (sent + size).min(all.len());
                tx.send_slice(&all[sent..end]).unwrap();
                sent = end;
                if sent == all.len() {
                    break;
                }
            }
            println!("SENT");
        }
        // Receive until disconnected; every message intact and in order, n of them.
        "recv" => {
            let rx = if create {
                shmchan::spsc::Receiver::<Msg>::create(&name, &opts).unwrap()
            } else {
                shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap()
            };
            println!("READY");
            let mut next = 0;
            while let Ok(m) = rx.recv() {
                assert!(m.is_intact(), "torn message {m:?}");
                assert_eq!(m.seq, next, "out of order or lost");
                next += 1;
            }
            assert_eq!(next, n, "received {next} messages, expected {n}");
            println!("GOT {next}");
        }
        // Attach System V segment SHMCHAN_TEST_TOKEN read-only (as a local user trying to
        // keep a dead process's liveness token alive would) and hold it until killed.
        "forge-token" => {
            let id = env_u64("SHMCHAN_TEST_TOKEN", 0) as i32;
            // SAFETY: plain system call; the attachment is never read.
            let p = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
            if p as isize == -1 {
                println!("REFUSED {}", std::io::Error::last_os_error());
            } else {
                println!("ATTACHED");
            }
            hang();
        }
        // Take `n` messages, then exit (SHMCHAN_TEST_EXIT=1) or hang until killed.
        "recv-hang" => {
            let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            println!("READY");
            for i in 0..n {
                assert_eq!(rx.recv().unwrap(), Msg::new(i));
            }
            println!("TOOK");
            if !flag("SHMCHAN_TEST_EXIT") {
                hang();
            }
        }
        // Broadcast (tests/broadcast.rs): subscribe (SHMCHAN_TEST_START: latest, oldest or
        // history:N; SHMCHAN_TEST_BLOCK=1 expects a Block-mode topic) and receive until the
        // publisher is gone (or N values), checking each value is whole and exactly where the
        // count of values and lags says (from SHMCHAN_TEST_FIRST if set). SHMCHAN_TEST_SLOW_US:
        // sleep that long every 100 values. Prints RESULT received lagged torn evicted first.
        "bc-sub" => {
            use shmchan::broadcast::{Overflow, RecvError, Start, Subscriber};
            let start = match std::env::var("SHMCHAN_TEST_START").as_deref() {
                Ok("oldest") => Start::Oldest,
                Ok(h) if h.starts_with("history:") => {
                    Start::History(h["history:".len()..].parse().unwrap())
                }
                _ => Start::Latest,
            };
            let evict_ms = env_u64("SHMCHAN_TEST_EVICT_MS", 0);
            let sopts = if flag("SHMCHAN_TEST_BLOCK") {
                opts.clone().overflow(Overflow::Block {
                    evict_after: (evict_ms > 0).then(|| Duration::from_millis(evict_ms)),
                })
            } else {
                opts.clone()
            };
            let mut rx = Subscriber::<Msg>::open_from(&name, start, &sopts).unwrap();
            println!("READY");
            let first = std::env::var("SHMCHAN_TEST_FIRST")
                .ok()
                .map(|s| s.parse::<u64>().unwrap());
            let slow = env_u64("SHMCHAN_TEST_SLOW_US", 0);
            // Hostile-bytes tests: a forged stamp can put an old value where a new one is
            // expected; only crashes and hangs are failures then.
            let lax = flag("SHMCHAN_TEST_LAX");
            let (mut received, mut lagged, mut torn, mut evicted) = (0u64, 0u64, 0u64, false);
            let mut expected = first;
            let mut first_seen = None;
            while n == 0 || received < n {
                match rx.recv() {
                    Ok(m) => {
                        if !m.is_intact() {
                            torn += 1;
                            continue;
                        }
                        if let (Some(e), false) = (expected, lax) {
                            assert_eq!(
                                m.seq, e,
                                "value out of place ({received} received, {lagged} lost)"
                            );
                        }
                        first_seen.get_or_insert(m.seq);
                        expected = Some(m.seq + 1);
                        received += 1;
                        if slow > 0 && received % 100 == 0 {
                            std::thread::sleep(Duration::from_micros(slow));
                        }
                    }
                    Err(RecvError::Lagged(k)) => {
                        lagged += k;
                        expected = expected.map(|e| e + k);
                    }
                    Err(RecvError::Evicted) => {
                        evicted = true;
                        break;
                    }
                    Err(RecvError::Disconnected) => break,
                }
            }
            println!(
                "RESULT {received} {lagged} {torn} {} {} {}",
                u8::from(evicted),
                first_seen.unwrap_or(u64::MAX),
                expected.unwrap_or(u64::MAX)
            );
        }
        // Broadcast frame topics (tests/broadcast_frames.rs): as bc-sub, with test frames of
        // at most SHMCHAN_TEST_MAX bytes ([`topic_frame`]) received with `recv_into`.
        "bc-frame-sub" => {
            use shmchan::broadcast::{FrameSubscriber, Overflow, RecvError, Start};
            let max = env_u64("SHMCHAN_TEST_MAX", 0) as usize;
            let start = match std::env::var("SHMCHAN_TEST_START").as_deref() {
                Ok("oldest") => Start::Oldest,
                _ => Start::Latest,
            };
            let sopts = if flag("SHMCHAN_TEST_BLOCK") {
                opts.clone().overflow(Overflow::Block { evict_after: None })
            } else {
                opts.clone()
            };
            let mut rx = FrameSubscriber::open_from(&name, start, &sopts).unwrap();
            assert_eq!(rx.max_frame(), max, "the topic's largest frame");
            println!("READY");
            let mut expected = std::env::var("SHMCHAN_TEST_FIRST")
                .ok()
                .map(|s| s.parse::<u64>().unwrap());
            let slow = env_u64("SHMCHAN_TEST_SLOW_US", 0);
            let (mut received, mut lagged, mut torn) = (0u64, 0u64, 0u64);
            let mut buf = Vec::new();
            while n == 0 || received < n {
                match rx.recv_into(&mut buf) {
                    Ok(len) => {
                        assert_eq!(len, buf.len());
                        let Some(seq) = topic_frame_seq(&buf, max) else {
                            torn += 1;
                            continue;
                        };
                        // Hostile-bytes tests (SHMCHAN_TEST_LAX): only crashes and hangs
                        // are failures.
                        if let (Some(e), false) = (expected, flag("SHMCHAN_TEST_LAX")) {
                            assert_eq!(
                                seq, e,
                                "frame out of place ({received} received, {lagged} lost)"
                            );
                        }
                        expected = Some(seq + 1);
                        received += 1;
                        if slow > 0 && received % 100 == 0 {
                            std::thread::sleep(Duration::from_micros(slow));
                        }
                    }
                    Err(RecvError::Lagged(k)) => {
                        lagged += k;
                        expected = expected.map(|e| e + k);
                    }
                    Err(RecvError::Evicted) => panic!("evicted"),
                    Err(RecvError::Disconnected) => break,
                }
            }
            println!(
                "RESULT {received} {lagged} {torn} 0 0 {}",
                expected.unwrap_or(u64::MAX)
            );
        }
        // Publish test frames BASE.. N of them (at most SHMCHAN_TEST_MAX bytes, which the
        // topic is created with) as the frame topic's publisher, creating it or taking it over
        // (without asking for a largest frame), printing SENT after the last; then hang.
        "bc-frame-pub" => {
            let max = env_u64("SHMCHAN_TEST_MAX", 0) as usize;
            let mut tx = if flag("SHMCHAN_TEST_CREATE") {
                shmchan::broadcast::FramePublisher::create(&name, &opts.clone().max_frame(max))
            } else {
                shmchan::broadcast::FramePublisher::open(&name, &opts)
            }
            .unwrap();
            assert_eq!(tx.max_frame(), max, "the topic's largest frame");
            let base = env_u64("SHMCHAN_TEST_BASE", 0);
            let mut buf = Vec::new();
            for i in base..base + n {
                topic_frame(i, max, &mut buf);
                tx.send(&buf).unwrap();
            }
            println!("SENT");
            hang();
        }
        // Subscribe (Block mode) and read nothing until the file SHMCHAN_TEST_GO exists (the
        // test stops, kills or continues us meanwhile); then one receive, and print what it
        // gave.
        "bc-stall" => {
            use shmchan::broadcast::{Overflow, Subscriber};
            let evict = env_u64("SHMCHAN_TEST_EVICT_MS", 0);
            let sopts = opts.clone().overflow(Overflow::Block {
                evict_after: (evict > 0).then(|| Duration::from_millis(evict)),
            });
            let mut rx = Subscriber::<Msg>::open(&name, &sopts).unwrap();
            println!("READY");
            let go = std::env::var("SHMCHAN_TEST_GO").unwrap();
            while !std::path::Path::new(&go).exists() {
                std::thread::sleep(Duration::from_millis(2));
            }
            println!("GOT {:?}", rx.recv().map(|m| m.seq));
        }
        // Publish Msg BASE.. N of them as the topic's publisher (creating it, or taking it
        // over), printing SENT after the last; then hang until killed.
        "bc-pub" => {
            let mut tx = shmchan::broadcast::Publisher::<Msg>::create(&name, &opts).unwrap();
            let base = env_u64("SHMCHAN_TEST_BASE", 0);
            for i in base..base + n {
                tx.send(Msg::new(i)).unwrap();
            }
            println!("SENT");
            hang();
        }
        // Join and leave the topic K times (SHMCHAN_TEST_N), each subscriber in a forked
        // child of ours that reads a little; every third one is killed with SIGKILL while it
        // is subscribed, the others leave by dropping their subscriber. Prints DONE joins kills.
        "bc-churn" => {
            let (mut joins, mut kills) = (0u64, 0u64);
            for k in 0..n {
                let kill = k % 3 == 0;
                let mut fds = [0; 2];
                // SAFETY: plain system call into a two-element array.
                assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
                // SAFETY: this process is single-threaded here (no reactor, no other thread),
                // so the child may do anything.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    let code = match shmchan::broadcast::Subscriber::<Msg>::open(&name, &opts) {
                        Ok(mut rx) => {
                            let _ = rx.recv_timeout(Duration::from_millis(2));
                            // SAFETY: writes one byte from a live buffer to our pipe.
                            unsafe { libc::write(fds[1], b"j".as_ptr().cast(), 1) };
                            if kill {
                                loop {
                                    let _ = rx.recv_timeout(Duration::from_millis(50));
                                }
                            }
                            drop(rx);
                            0
                        }
                        Err(_) => 1,
                    };
                    // SAFETY: leaves the child at once.
                    unsafe { libc::_exit(code) };
                }
                assert!(pid > 0, "fork failed");
                let mut byte = [0u8; 1];
                // SAFETY: closing our copy of the write end (so that a child that exits
                // without writing gives end of file), then reading one byte into a live
                // buffer, then closing the read end.
                let got = unsafe {
                    libc::close(fds[1]);
                    let got = libc::read(fds[0], byte.as_mut_ptr().cast(), 1);
                    libc::close(fds[0]);
                    got
                };
                if got == 1 {
                    joins += 1;
                }
                if kill {
                    // SAFETY: our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    kills += 1;
                }
                let mut status = 0;
                // SAFETY: waits for our own child.
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                if !kill {
                    assert!(
                        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                        "a subscriber could not join ({status:#x}): a place was lost"
                    );
                }
            }
            println!("DONE {joins} {kills}");
        }
        // Channels that outlive their peers (tests/reattach.rs). Receive (kind
        // SHMCHAN_TEST_KIND: spsc, mpmc, frame) and print each message before freeing it;
        // after N messages (0: for ever) exit, dropping the receiver.
        "re-recv" => {
            let kind = std::env::var("SHMCHAN_TEST_KIND").unwrap();
            let mut rx = AnyReceiver::open(&kind, &name, &opts);
            println!("READY");
            let mut got = 0;
            while n == 0 || got < n {
                match rx.recv_printing() {
                    Some(()) => got += 1,
                    None => break,
                }
            }
            println!("DONE");
        }
        // Take one message and hold it (a `Ref` or a `Frame`) until killed.
        "re-hold" => {
            let kind = std::env::var("SHMCHAN_TEST_KIND").unwrap();
            match kind.as_str() {
                "spsc" => {
                    let mut rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
                    let r = rx.recv_ref().unwrap();
                    println!("HOLDING {}", r.seq);
                    hang();
                }
                "frame" => {
                    let mut rx = shmchan::frame::Receiver::open(&name, &opts).unwrap();
                    let f = rx.recv().unwrap();
                    println!("HOLDING {}", frame_seq(&f).unwrap());
                    hang();
                }
                k => panic!("kind {k}"),
            }
        }
        // Send N messages (kind spsc or frame) numbered SHMCHAN_TEST_BASE + j, printing each
        // one sent; a disconnect (no receiver now) waits for the next receiver. Then exit.
        "re-send" => {
            let kind = std::env::var("SHMCHAN_TEST_KIND").unwrap();
            let base = env_u64("SHMCHAN_TEST_BASE", 0);
            let mut tx = AnySender::open(&kind, &name, &opts);
            println!("READY");
            for j in 0..n {
                while !tx.send(base + j) {
                    let _ = tx.wait_for_peer();
                }
                println!("SENT {j}");
            }
            println!("DONE");
        }
        // A frame sender: send N frames, then take a loan, write it, and hang until killed.
        "re-loan-frame" => {
            let mut tx = shmchan::frame::Sender::open(&name, &opts).unwrap();
            for seq in 0..n {
                tx.send(&frame_msg(seq)).unwrap();
            }
            let mut loan = tx.loan(64).unwrap();
            loan[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            println!("LOANED");
            hang();
        }
        // A pipe writer: write stream bytes SHMCHAN_TEST_BASE..SHMCHAN_TEST_N, then exit.
        "re-pipe-write" => {
            use std::io::Write;
            let mut w = shmchan::pipe::Writer::open(&name, &opts).unwrap();
            let bytes: Vec<u8> = (env_u64("SHMCHAN_TEST_BASE", 0)..n)
                .map(stream_byte)
                .collect();
            w.write_all(&bytes).unwrap();
            println!("WROTE");
        }
        // Attach a receiver of SHMCHAN_TEST_KIND (spsc, mpmc, frame, pipe) and then either
        // block in a receive (SHMCHAN_TEST_PARK=1: asleep on the doorbell) or spin without
        // receiving, until killed.
        // Attach a receiver of SHMCHAN_TEST_KIND, then drop it (the process lives on) once the
        // file SHMCHAN_TEST_OUT exists, say DROPPED, and hang until killed.
        "re-drop" => {
            let kind = std::env::var("SHMCHAN_TEST_KIND").unwrap();
            let go = std::env::var("SHMCHAN_TEST_OUT").unwrap();
            let rx = AnyReceiver::open(&kind, &name, &opts);
            println!("READY");
            while !std::path::Path::new(&go).exists() {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(rx);
            println!("DROPPED");
            hang();
        }
        "re-idle" => {
            let kind = std::env::var("SHMCHAN_TEST_KIND").unwrap();
            let mut rx = AnyReceiver::open(&kind, &name, &opts);
            println!("READY");
            if flag("SHMCHAN_TEST_PARK") {
                let _ = rx.recv_printing();
                panic!("received something");
            }
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1)); // busy, never in a receive
            }
        }
        // Block in recv() on an empty ring; report the CPU time used while blocked.
        "recv-park" => {
            let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            let before = cpu_time();
            let t0 = Instant::now();
            println!("READY");
            let m = rx.recv().unwrap();
            let (cpu, wall) = (cpu_time() - before, t0.elapsed());
            assert_eq!(m, Msg::new(7));
            println!("CPU_US {} WALL_US {}", cpu.as_micros(), wall.as_micros());
        }
        // Keep using a receiver while the parent scribbles over the region.
        "victim" => {
            let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            println!("READY");
            let until = Instant::now() + Duration::from_millis(env_u64("SHMCHAN_TEST_MS", 1000));
            let (mut ok, mut errs) = (0u64, 0u64);
            while Instant::now() < until {
                for _ in 0..100 {
                    match rx.try_recv() {
                        Ok(_) => ok += 1,
                        Err(_) => errs += 1,
                    }
                }
                let _ = (rx.len(), rx.is_full(), rx.is_disconnected());
                match rx.recv_timeout(Duration::from_micros(200)) {
                    Ok(_) => ok += 1,
                    Err(_) => errs += 1,
                }
                let mut buf = [Msg::new(0); 16];
                match rx.try_recv_slice(&mut buf) {
                    Ok(n) => ok += n as u64,
                    Err(_) => errs += 1,
                }
                match rx.recv_slice_timeout(&mut buf, Duration::from_micros(200)) {
                    Ok(n) => ok += n as u64,
                    Err(_) => errs += 1,
                }
            }
            // Dropping reads the (garbage) endpoint table and refcount too: it must survive
            // that as well. The parent removes the name whatever the refcount says.
            drop(rx);
            println!("SURVIVED ok={ok} errs={errs}");
        }
        // Frames: create or open the sender, send frames 0..n (`frame_len`, `fill_frame`),
        // every third one through a loan; then hang (SHMCHAN_TEST_HANG) or exit.
        "frame-send" => {
            let mut tx = if create {
                shmchan::frame::Sender::create(&name, &opts).unwrap()
            } else {
                shmchan::frame::Sender::open(&name, &opts).unwrap()
            };
            println!("READY");
            let max = tx.max_frame();
            let mut buf = vec![0u8; max];
            for i in 0..n {
                let len = frame_len(i, max);
                if i % 3 == 0 {
                    let mut loan = tx.loan(len).unwrap();
                    fill_frame(i, &mut loan[..len]);
                    loan.commit(len);
                } else {
                    fill_frame(i, &mut buf[..len]);
                    tx.send(&buf[..len]).unwrap();
                }
            }
            println!("SENT");
            if flag("SHMCHAN_TEST_HANG") {
                hang();
            }
        }
        // Frames: create or open the receiver, receive until disconnected (in place and with
        // `recv_into`, alternately): n frames, each the right one.
        "frame-recv" => {
            let mut rx = if create {
                shmchan::frame::Receiver::create(&name, &opts).unwrap()
            } else {
                shmchan::frame::Receiver::open(&name, &opts).unwrap()
            };
            let max = env_u64("SHMCHAN_TEST_MAX", 0) as usize;
            println!("READY");
            let mut next = 0u64;
            let mut buf = Vec::new();
            loop {
                if next % 2 == 0 {
                    let Ok(f) = rx.recv() else { break };
                    assert!(
                        frame_is(next, max, &f),
                        "frame {next} is wrong ({} bytes)",
                        f.len()
                    );
                } else {
                    let Ok(len) = rx.recv_into(&mut buf) else {
                        break;
                    };
                    assert_eq!(len, buf.len());
                    assert!(
                        frame_is(next, max, &buf),
                        "frame {next} is wrong ({len} bytes)"
                    );
                }
                next += 1;
            }
            assert_eq!(next, n, "received {next} frames, expected {n}");
            println!("GOT {next}");
        }
        // Frames: open the sender, send SHMCHAN_TEST_N frames (lengths for a largest frame of
        // SHMCHAN_TEST_MAX), then take a loan, write into it, and hang holding it (to be killed).
        "frame-loan-hang" => {
            let mut tx = shmchan::frame::Sender::open(&name, &opts).unwrap();
            let max = env_u64("SHMCHAN_TEST_MAX", tx.max_frame() as u64) as usize;
            let mut buf = vec![0u8; max];
            for i in 0..n {
                let len = frame_len(i, max);
                fill_frame(i, &mut buf[..len]);
                tx.send(&buf[..len]).unwrap();
            }
            let mut loan = tx.loan(1000).unwrap();
            loan.fill(0xee);
            println!("LOANED");
            hang();
        }
        // Frames: open the receiver and hang holding the first frame (to be killed).
        "frame-hold-hang" => {
            let mut rx = shmchan::frame::Receiver::open(&name, &opts).unwrap();
            let f = rx.recv().unwrap();
            println!("HOLDING {}", f.len());
            hang();
        }
        // Pipe: open the writer and write the test stream's first n bytes in writes of varying
        // sizes (1 byte to 100 KiB); then hang (SHMCHAN_TEST_HANG) or exit.
        "pipe-write" => {
            use std::io::Write;
            let mut w = shmchan::pipe::Writer::open(&name, &opts).unwrap();
            println!("READY");
            let mut buf = vec![0u8; 100 << 10];
            let mut at = 0u64;
            let mut k = 0u64;
            while at < n {
                k += 1;
                let size = [1u64, 7, 4096, 100 << 10, 333, 65536][k as usize % 6].min(n - at);
                for (j, b) in buf[..size as usize].iter_mut().enumerate() {
                    *b = stream_byte(at + j as u64);
                }
                w.write_all(&buf[..size as usize]).unwrap();
                at += size;
            }
            println!("WROTE");
            if flag("SHMCHAN_TEST_HANG") {
                hang();
            }
        }
        // Pipe: open the reader, read to end of file in reads of varying sizes, check every
        // byte is the test stream's, print how many.
        "pipe-read" => {
            use std::io::Read;
            let mut r = shmchan::pipe::Reader::open(&name, &opts).unwrap();
            println!("READY");
            let mut buf = vec![0u8; 70_000];
            let mut at = 0u64;
            let mut k = 0usize;
            loop {
                k += 1;
                let want = [1usize, 10, 70_000, 4095, 65536][k % 5];
                let got = r.read(&mut buf[..want]).unwrap();
                if got == 0 {
                    break;
                }
                for (j, &b) in buf[..got].iter().enumerate() {
                    assert_eq!(b, stream_byte(at + j as u64), "byte {}", at + j as u64);
                }
                at += got as u64;
            }
            println!("GOT {at}");
        }
        // Frames and fork: this process holds a frame, a loan and a pipe reader's record, forks,
        // and the child drops the frame, commits the loan and reads the pipe through its copies:
        // none of it may change the parent's rings. Prints OK.
        "frame-fork" => {
            use std::io::{BufRead, Write};
            let opts = opts.capacity(64);
            let (f_name, p_name) = (format!("{name}-f"), format!("{name}-p"));
            let mut tx = shmchan::frame::Sender::create(&f_name, &opts).unwrap();
            let mut rx = shmchan::frame::Receiver::open(&f_name, &opts).unwrap();
            let mut w = shmchan::pipe::Writer::create(&p_name, &opts).unwrap();
            let mut r = shmchan::pipe::Reader::open(&p_name, &opts).unwrap();
            w.write_all(b"pipe").unwrap();
            assert_eq!(r.fill_buf().unwrap(), b"pipe");
            tx.send(&[1; 48]).unwrap(); // the whole ring
            let held = rx.recv().unwrap();
            // SAFETY: the child only drops its copies and `_exit`s (no allocation).
            match unsafe { libc::fork() } {
                0 => {
                    drop(held);
                    let _ = r.fill_buf();
                    r.consume(4);
                    // SAFETY: leaves at once, running no destructor of the parent's.
                    unsafe { libc::_exit(0) }
                }
                pid => {
                    let mut status = 0;
                    // SAFETY: waits for our own child.
                    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                }
            }
            assert_eq!(
                tx.len(),
                64,
                "the ring is still full: the frame is still held"
            );
            assert_eq!(&*held, &[1; 48], "the held frame is intact");
            drop(held);
            // The pipe's shared read position (the header's `head`, at byte 1152) has not
            // moved: the writer still has the record's room counted as taken.
            let head = || {
                use std::os::unix::fs::FileExt;
                let f = std::fs::File::open(std::path::Path::new("/dev/shm").join(&p_name));
                let mut word = [0; 8];
                f.unwrap().read_exact_at(&mut word, 1664).unwrap(); // the header's head
                u64::from_ne_bytes(word)
            };
            assert_eq!(head(), 0, "the child's consume moved nothing");
            assert_eq!(
                r.fill_buf().unwrap(),
                b"pipe",
                "the pipe record is still ours"
            );
            r.consume(4);
            assert_eq!(head(), 32, "our own consume moves it");
            // A loan committed by a forked copy publishes nothing.
            let loan = tx.loan(8).unwrap();
            // SAFETY: as above.
            match unsafe { libc::fork() } {
                0 => {
                    loan.commit(8);
                    // SAFETY: as above.
                    unsafe { libc::_exit(0) }
                }
                pid => {
                    let mut status = 0;
                    // SAFETY: waits for our own child.
                    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                }
            }
            assert!(
                rx.try_recv().is_err(),
                "nothing published by the child's copy of the loan"
            );
            println!("OK");
        }
        // Loans (SPSC, `Big`): create or open the sender and, for seq 0..n, fill a loan in
        // place and commit it; before each `abandoned` seq, a loan is written with seq
        // u64::MAX and dropped. Then take one more loan, write it, and hang holding it
        // (SHMCHAN_TEST_HANG) or exit.
        "loan-send" => {
            let mut tx = if create {
                shmchan::spsc::Sender::<Big>::create(&name, &opts).unwrap()
            } else {
                shmchan::spsc::Sender::<Big>::open(&name, &opts).unwrap()
            };
            println!("READY");
            for seq in 0..n {
                let mut loan = tx.loan().unwrap();
                if abandoned(seq) {
                    loan.seq = u64::MAX; // never delivered
                    drop(loan);
                }
                let mut loan = tx.loan().unwrap();
                loan.fill(seq);
                loan.commit();
            }
            println!("SENT");
            if flag("SHMCHAN_TEST_HANG") {
                let mut loan = tx.loan().unwrap();
                loan.fill(u64::MAX);
                println!("LOANED");
                hang();
            }
        }
        // References (SPSC, `Big`): open the receiver, take the first message in place and
        // hang holding it (to be killed).
        "ref-hang" => {
            let mut rx = shmchan::spsc::Receiver::<Big>::open(&name, &opts).unwrap();
            let m = rx.recv_ref().unwrap();
            assert!(m.is_intact());
            println!("HOLDING {}", m.seq);
            hang();
        }
        // MPMC loans, producer number SHMCHAN_TEST_P (`Big`): for i in 0..n, a loan filled in
        // place with seq (P << 40) | i and committed; before each `abandoned` i, a loan is
        // written with seq u64::MAX and dropped. Then hang holding a written loan
        // (SHMCHAN_TEST_HANG) or exit.
        "mpmc-loan-send" => {
            let p = env_u64("SHMCHAN_TEST_P", 0);
            let tx = shmchan::mpmc::Sender::<Big>::open(&name, &opts).unwrap();
            println!("READY");
            for i in 0..n {
                if abandoned(i) {
                    let mut loan = tx.loan().unwrap();
                    loan.seq = u64::MAX;
                }
                let mut loan = tx.loan().unwrap();
                loan.fill((p << 40) | i);
                loan.commit();
            }
            println!("SENT");
            if flag("SHMCHAN_TEST_HANG") {
                let mut loan = tx.loan().unwrap();
                loan.fill(u64::MAX);
                println!("LOANED");
                hang();
            }
        }
        // MPMC references (`Big`): open a receiver, take SHMCHAN_TEST_TAKE messages in place,
        // print their seqs, and hang holding them all (to be killed).
        // MPMC of words (`u64`): take SHMCHAN_TEST_TAKE messages in place (references, two
        // steps) and hang holding them (to be killed).
        "mpmc-word-ref-hang" => {
            let rx = shmchan::mpmc::Receiver::<u64>::open(&name, &opts).unwrap();
            let take = env_u64("SHMCHAN_TEST_TAKE", 1);
            let held: Vec<_> = (0..take).map(|_| rx.recv_ref().unwrap()).collect();
            let values: Vec<String> = held.iter().map(|v| v.to_string()).collect();
            println!("HOLDING {}", values.join(" "));
            hang();
        }
        "mpmc-ref-hang" => {
            let rx = shmchan::mpmc::Receiver::<Big>::open(&name, &opts).unwrap();
            let take = env_u64("SHMCHAN_TEST_TAKE", 1);
            let held: Vec<_> = (0..take).map(|_| rx.recv_ref().unwrap()).collect();
            let seqs: Vec<String> = held.iter().map(|m| m.seq.to_string()).collect();
            assert!(held.iter().all(|m| m.is_intact()));
            println!("HOLDING {}", seqs.join(" "));
            hang();
        }
        // Loans and fork: this process holds a loan and a `Ref` (SPSC, then MPMC) and forks;
        // the child's copies refuse to be written or read (a panic), and committing or
        // dropping them changes nothing in the parent's rings. Prints OK.
        "loan-fork" => {
            let opts = opts.capacity(2);
            let (a, b) = (format!("{name}-a"), format!("{name}-b"));
            let mut tx = shmchan::spsc::Sender::<u64>::create(&a, &opts).unwrap();
            let mut rx = shmchan::spsc::Receiver::<u64>::open(&a, &opts).unwrap();
            let mtx = shmchan::mpmc::Sender::<u64>::create(&b, &opts).unwrap();
            let mrx = shmchan::mpmc::Receiver::<u64>::open(&b, &opts).unwrap();
            // Runs `f` in a forked child; its exit status (`f`'s value).
            let in_child = |f: &mut dyn FnMut() -> i32| -> i32 {
                // SAFETY: the child only runs `f` (commits, drops or touches copies of our
                // handles' loans and references) and `_exit`s.
                match unsafe { libc::fork() } {
                    0 => {
                        let code = f();
                        // SAFETY: leaves at once, running no destructor of the parent's.
                        unsafe { libc::_exit(code) }
                    }
                    pid => {
                        let mut status = 0;
                        // SAFETY: waits for our own child.
                        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                        libc::WEXITSTATUS(status)
                    }
                }
            };
            // Did `f` panic (in the child)? 0: it panicked, as it should.
            let panics = |f: &mut dyn FnMut()| -> i32 {
                let quiet = std::panic::take_hook();
                std::panic::set_hook(Box::new(|_| {}));
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                std::panic::set_hook(quiet);
                i32::from(r.is_ok())
            };
            // An SPSC loan: a forked copy may not write into it (the slot is the parent's),
            // and committed by the copy it publishes nothing.
            let mut loan = Some(tx.loan().unwrap());
            **loan.as_mut().unwrap() = 5;
            let code = in_child(&mut || panics(&mut || **loan.as_mut().unwrap() = 666));
            assert_eq!(
                code, 0,
                "spsc: a forked copy of a loan refused to be written"
            );
            in_child(&mut || {
                loan.take().unwrap().commit();
                0
            });
            // (Our own copy of the loan is never committed: an SPSC loan dropped does nothing.)
            assert!(
                rx.try_recv().is_err(),
                "spsc: nothing published by the copy"
            );
            // An SPSC `Ref` dropped by a forked copy frees nothing.
            tx.send(1).unwrap();
            tx.send(2).unwrap();
            let mut held = Some(rx.recv_ref().unwrap());
            let code = in_child(&mut || panics(&mut || assert_eq!(**held.as_ref().unwrap(), 1)));
            assert_eq!(code, 0, "spsc: a forked copy of a Ref refused to be read");
            in_child(&mut || {
                drop(held.take());
                0
            });
            assert_eq!(tx.len(), 2, "spsc: the slot is still held");
            drop(held);
            assert_eq!(tx.len(), 1, "spsc: our own drop frees it");
            // MPMC: a loan committed by a forked copy publishes nothing (and ours, dropped,
            // gives the position up); a `Ref` dropped by a copy frees nothing.
            let mut loan = Some(mtx.loan().unwrap());
            let code = in_child(&mut || panics(&mut || **loan.as_mut().unwrap() = 666));
            assert_eq!(
                code, 0,
                "mpmc: a forked copy of a loan refused to be written"
            );
            in_child(&mut || {
                loan.take().unwrap().commit();
                0
            });
            drop(loan);
            assert!(
                mrx.try_recv().is_err(),
                "mpmc: nothing published by the copy"
            );
            mtx.send(3).unwrap();
            mtx.send(4).unwrap();
            let mut held = Some(mrx.recv_ref().unwrap());
            let code = in_child(&mut || panics(&mut || assert_eq!(**held.as_ref().unwrap(), 3)));
            assert_eq!(code, 0, "mpmc: a forked copy of a Ref refused to be read");
            in_child(&mut || {
                drop(held.take());
                0
            });
            assert!(
                mtx.try_send(5).is_err(),
                "mpmc: the held slot is still held"
            );
            assert_eq!(*held.unwrap(), 3);
            mtx.send(5).unwrap();
            assert_eq!(mrx.try_iter().collect::<Vec<_>>(), [4, 5]);
            println!("OK");
        }
        // Async tests: open the sender (SPSC, or MPMC for "mpmc-send-paced") and send 0..n,
        // sleeping SHMCHAN_TEST_PACE_US after every 8th message (so that the receiver often
        // finds the ring empty and waits); then exit.
        "send-paced" | "mpmc-send-paced" => {
            let pace = Duration::from_micros(env_u64("SHMCHAN_TEST_PACE_US", 200));
            let send: Box<dyn Fn(Msg)> = if role == "send-paced" {
                let tx = shmchan::spsc::Sender::<Msg>::open(&name, &opts).unwrap();
                Box::new(move |m| tx.send(m).unwrap())
            } else {
                let tx = shmchan::mpmc::Sender::<Msg>::open(&name, &opts).unwrap();
                Box::new(move |m| tx.send(m).unwrap())
            };
            println!("READY");
            for i in 0..n {
                send(Msg::new(i));
                if i % 8 == 7 {
                    std::thread::sleep(pace);
                }
            }
            println!("SENT");
        }
        // Async idle test, receiving side: create SPSC receivers `<name>-<i>` for i in 0..n,
        // wait until each has its sender, start one async receive per channel under a tokio
        // runtime (SHMCHAN_TEST_FLAVOR "multi" or "current"), measure this process's CPU time
        // over SHMCHAN_TEST_MS of idling, print it, create the file SHMCHAN_TEST_GO, and print
        // how many receives completed (each with message i) once all have.
        "async-idle-recv" => {
            let go = std::env::var("SHMCHAN_TEST_GO").unwrap();
            let idle = Duration::from_millis(env_u64("SHMCHAN_TEST_MS", 2000));
            let mut rxs: Vec<_> = (0..n)
                .map(|i| {
                    shmchan::spsc::Receiver::<Msg>::create(&format!("{name}-{i}"), &opts).unwrap()
                })
                .collect();
            println!("READY");
            for rx in &rxs {
                rx.wait_for_peer(Duration::from_secs(20)).unwrap();
            }
            let rt = match std::env::var("SHMCHAN_TEST_FLAVOR").as_deref() {
                Ok("current") => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap(),
                _ => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap(),
            };
            let got = rt.block_on(async {
                let tasks: Vec<_> = rxs
                    .drain(..)
                    .enumerate()
                    .map(|(i, mut rx)| {
                        tokio::spawn(async move {
                            let m = rx.recv_async().await.unwrap();
                            assert_eq!(m, Msg::new(i as u64));
                            rx
                        })
                    })
                    .collect();
                tokio::time::sleep(Duration::from_millis(300)).await; // all registered
                let before = cpu_time();
                tokio::time::sleep(idle).await;
                let cpu = cpu_time() - before;
                println!(
                    "CPU_US {} WAITERS {}",
                    cpu.as_micros(),
                    shmchan::registered_waiters()
                );
                let t0 = Instant::now();
                std::fs::write(&go, b"go").unwrap();
                let mut got = 0;
                for t in tasks {
                    let _rx = tokio::time::timeout(Duration::from_secs(20), t)
                        .await
                        .expect("every receiver wakes")
                        .unwrap();
                    got += 1;
                }
                println!("WOKE_MS {}", t0.elapsed().as_millis());
                got
            });
            println!("GOT {got}");
        }
        // Async idle test, sending side: open SPSC senders `<name>-<i>` for i in 0..n, wait for
        // the file SHMCHAN_TEST_GO, send message i on each, then exit.
        "async-many-send" => {
            let go = std::env::var("SHMCHAN_TEST_GO").unwrap();
            let txs: Vec<_> = (0..n)
                .map(|i| shmchan::spsc::Sender::<Msg>::open(&format!("{name}-{i}"), &opts).unwrap())
                .collect();
            println!("READY");
            let deadline = Instant::now() + Duration::from_secs(60);
            while !std::path::Path::new(&go).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            for (i, tx) in txs.iter().enumerate() {
                tx.send(Msg::new(i as u64)).unwrap();
            }
            println!("SENT");
        }
        // Async and fork: open both ends of the channel, receive once asynchronously (so this
        // process has a reactor thread), then fork. In the child, the copies of the handles
        // refuse at the first poll (recv_async, stream, send_async), and a new channel made in
        // the child receives asynchronously (through a reactor of the child's own). Then the
        // parent's handles still work asynchronously.
        // A process whose first async wait is on an in-process channel (no named channel
        // opened before the fork): its forked child's own async wait must get a reactor of its
        // own (issue 18 #3: it registered with the parent's, whose thread it does not have).
        "async-fork-heap" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (tx, mut rx) = shmchan::spsc::channel::<u64>(4).unwrap();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(1).unwrap();
            });
            assert_eq!(rt.block_on(rx.recv_async()), Ok(1));
            t.join().unwrap();
            // SAFETY: the child makes a channel, a thread and a runtime of its own, and
            // `_exit`s; nothing of the parent's is used.
            match unsafe { libc::fork() } {
                0 => {
                    let (ctx, mut crx) = shmchan::spsc::channel::<u64>(4).unwrap();
                    let t = std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(50));
                        ctx.send(5).unwrap();
                    });
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let t0 = Instant::now();
                    let got = rt.block_on(async {
                        tokio::time::timeout(Duration::from_secs(3), crx.recv_async()).await
                    });
                    // Woken by the send (50 ms), not found by the timer's last poll (3 s).
                    let ok = got == Ok(Ok(5)) && t0.elapsed() < Duration::from_secs(1);
                    t.join().unwrap();
                    // SAFETY: leaves the child at once, running no destructor of the parent's.
                    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
                }
                -1 => panic!("fork failed"),
                pid => {
                    let mut status = 0;
                    // SAFETY: waits for our own child.
                    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                    assert!(
                        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                        "the forked child's async receive was never woken ({status:#x})"
                    );
                    println!("OK");
                }
            }
        }
        "async-fork" => {
            use futures_core::Stream;
            use std::future::Future;
            use std::task::{Context, Poll, Waker};
            let tx = shmchan::spsc::Sender::<Msg>::create(&name, &opts).unwrap();
            let mut rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                tx.send(Msg::new(0)).unwrap();
                tx
            });
            assert_eq!(rt.block_on(rx.recv_async()).unwrap(), Msg::new(0));
            let mut tx = t.join().unwrap();
            // SAFETY: the child polls futures by hand, makes a heap channel and one thread, and
            // `_exit`s; no lock of the parent's is taken (the old reactor is never touched).
            match unsafe { libc::fork() } {
                0 => {
                    let mut cx = Context::from_waker(Waker::noop());
                    let mut ok = matches!(
                        std::pin::pin!(rx.recv_async()).poll(&mut cx),
                        Poll::Ready(Err(_))
                    );
                    ok &= matches!(
                        std::pin::pin!(rx.stream()).poll_next(&mut cx),
                        Poll::Ready(None)
                    );
                    ok &= matches!(
                        std::pin::pin!(tx.send_async(Msg::new(9))).poll(&mut cx),
                        Poll::Ready(Err(shmchan::SendError(m))) if m == Msg::new(9)
                    );
                    // A channel of the child's own: its async receive needs a reactor thread,
                    // which the fork did not copy.
                    let (ctx, mut crx) = shmchan::spsc::channel::<u64>(4).unwrap();
                    let t = std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(50));
                        ctx.send(5).unwrap();
                    });
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    ok &= rt.block_on(async {
                        tokio::time::timeout(Duration::from_secs(10), crx.recv_async()).await
                    }) == Ok(Ok(5));
                    t.join().unwrap();
                    // SAFETY: leaves the child at once, running no destructor of the parent's.
                    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
                }
                -1 => panic!("fork failed"),
                pid => {
                    let mut status = 0;
                    // SAFETY: waits for our own child.
                    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                    assert!(
                        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                        "the forked child's async calls misbehaved ({status:#x})"
                    );
                }
            }
            rt.block_on(async {
                tx.send_async(Msg::new(1)).await.unwrap();
                assert_eq!(rx.recv_async().await.unwrap(), Msg::new(1));
            });
            println!("OK");
        }
        // MPMC producer number SHMCHAN_TEST_P of `u64`s (the one-step paths: a send is one
        // 16-byte CAS): send n values (P << 40) | i; with SHMCHAN_TEST_LOANS, every other one
        // through a loan (the two-step claim and publish), and a loan dropped before each
        // `abandoned` i. The values start at 1: a 0 would hide a receive that returned the
        // payload word's reset value.
        "mpmc-word-send" => {
            let p = env_u64("SHMCHAN_TEST_P", 0);
            let loans = flag("SHMCHAN_TEST_LOANS");
            let tx = shmchan::mpmc::Sender::<u64>::open(&name, &opts).unwrap();
            println!("READY");
            for i in 1..=n {
                let v = (p << 40) | i;
                if loans && abandoned(i) {
                    *tx.loan().unwrap() = u64::MAX;
                }
                if loans && i % 2 == 0 {
                    let mut loan = tx.loan().unwrap();
                    *loan = v;
                    loan.commit();
                } else {
                    tx.send(v).unwrap();
                }
            }
            println!("SENT");
            // Then hold a loan, written (u64::MAX - 1), until killed.
            if flag("SHMCHAN_TEST_HANG") {
                let mut loan = tx.loan().unwrap();
                *loan = u64::MAX - 1;
                println!("LOANED");
                hang();
            }
        }
        // MPMC producer number SHMCHAN_TEST_P: send n messages whose seq is (P << 40) | i.
        "mpmc-send" => {
            let p = env_u64("SHMCHAN_TEST_P", 0);
            let tx = shmchan::mpmc::Sender::<Msg>::open(&name, &opts).unwrap();
            println!("READY");
            for i in 0..n {
                tx.send(Msg::new((p << 40) | i)).unwrap();
            }
            println!("SENT");
            if flag("SHMCHAN_TEST_HANG") {
                hang();
            }
        }
        // MPMC consumer: receive until disconnected (or SHMCHAN_TEST_TAKE messages, then hang),
        // checking every message is intact and each producer's messages come in order; write
        // every seq received to SHMCHAN_TEST_OUT.
        "mpmc-recv" => {
            use std::io::Write;
            let rx = shmchan::mpmc::Receiver::<Msg>::open(&name, &opts).unwrap();
            let take = std::env::var("SHMCHAN_TEST_TAKE")
                .ok()
                .map(|v| v.parse::<u64>().unwrap());
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(std::env::var("SHMCHAN_TEST_OUT").unwrap()).unwrap(),
            );
            println!("READY");
            let mut last = std::collections::HashMap::<u64, u64>::new();
            let mut got = 0u64;
            while take.is_none_or(|t| got < t) {
                let Ok(m) = rx.recv() else { break };
                assert!(m.is_intact(), "torn message {m:?}");
                let (p, i) = (m.seq >> 40, m.seq & ((1 << 40) - 1));
                if let Some(&prev) = last.get(&p) {
                    assert!(i > prev, "producer {p}: {i} after {prev}");
                }
                last.insert(p, i);
                out.write_all(&m.seq.to_le_bytes()).unwrap();
                got += 1;
            }
            out.flush().unwrap();
            println!("GOT {got}");
            if take.is_some() {
                hang();
            }
        }
        // Echo every message from `<name>-ping` back on `<name>-pong`, sleeping on the futex
        // for each one (WaitStrategy::Park).
        "echo-park" => {
            let opts = opts.wait_strategy(shmchan::WaitStrategy::Park);
            let rx = shmchan::spsc::Receiver::<Msg>::open(&format!("{name}-ping"), &opts).unwrap();
            let tx = shmchan::spsc::Sender::<Msg>::open(&format!("{name}-pong"), &opts).unwrap();
            println!("READY");
            while let Ok(m) = rx.recv() {
                tx.send(m).unwrap();
            }
        }
        // Echo `<name>-ping` back on `<name>-pong`, pausing SHMCHAN_TEST_PACE_MS before each
        // reply, so that both sides wait (and probe each other) between messages. With
        // SHMCHAN_TEST_ZOMBIE=1 the main thread exits first (the leader is then a zombie while
        // this thread runs). Exits after SHMCHAN_TEST_N messages.
        "echo-slow" => {
            let pace = Duration::from_millis(env_u64("SHMCHAN_TEST_PACE_MS", 60));
            let rx = shmchan::spsc::Receiver::<Msg>::open(&format!("{name}-ping"), &opts).unwrap();
            let tx = shmchan::spsc::Sender::<Msg>::open(&format!("{name}-pong"), &opts).unwrap();
            if flag("SHMCHAN_TEST_ZOMBIE") {
                exit_main_thread();
            }
            println!("READY");
            for _ in 0..n {
                let m = rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("the pinger is alive: a ping must come");
                std::thread::sleep(pace);
                tx.send(m)
                    .expect("the pinger is alive: the pong must go out");
            }
            println!("ECHOED {n}");
        }
        // Open the side SHMCHAN_TEST_SIDE ("send" or "recv") and replace this process with
        // `sleep 30` without dropping the handle.
        "exec-hold" => {
            use std::os::unix::process::CommandExt;
            let keep: Box<dyn std::any::Any> =
                if std::env::var("SHMCHAN_TEST_SIDE").unwrap() == "send" {
                    Box::new(shmchan::spsc::Sender::<Msg>::open(&name, &opts).unwrap())
                } else {
                    Box::new(shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap())
                };
            println!("READY");
            let err = Command::new("sleep").arg("30").exec();
            drop(keep);
            panic!("exec failed: {err}");
        }
        // Open the sender, send 0, fork: the child's copy of the handle must refuse to send and
        // must not detach; then send 1. Then fork a child that lingers (holding the inherited
        // descriptors), print its pid, and hang until killed.
        "fork-send" => {
            use shmchan::TrySendError;
            let tx = shmchan::spsc::Sender::<Msg>::open(&name, &opts).unwrap();
            tx.send(Msg::new(0)).unwrap();
            // SAFETY: the child only calls the library (no allocation on these paths) and
            // `_exit`s.
            match unsafe { libc::fork() } {
                0 => {
                    let refused = matches!(
                        tx.try_send(Msg::new(99)),
                        Err(TrySendError::Disconnected(_))
                    ) && tx.send(Msg::new(98)).is_err()
                        && !tx.is_connected()
                        && tx.is_disconnected();
                    drop(tx);
                    // SAFETY: leaves the child at once, running no destructor of the parent's.
                    unsafe { libc::_exit(if refused { 0 } else { 1 }) }
                }
                -1 => panic!("fork failed"),
                pid => {
                    let mut status = 0;
                    // SAFETY: waits for our own child.
                    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                    assert!(
                        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                        "the forked copy of the sender did not refuse to send ({status:#x})"
                    );
                }
            }
            tx.send(Msg::new(1))
                .expect("the parent's sender still works after the fork");
            // SAFETY: as above; the lingering child only sleeps.
            let lingering = match unsafe { libc::fork() } {
                0 => loop {
                    // SAFETY: sleeps until killed.
                    unsafe { libc::pause() };
                },
                pid => pid,
            };
            println!("LINGER {lingering}");
            hang();
        }
        // Open an MPMC receiver that parks at once, and block in recv (to be killed there).
        "mpmc-park-recv" => {
            let opts = opts.wait_strategy(shmchan::WaitStrategy::Park);
            let rx = shmchan::mpmc::Receiver::<Msg>::open(&name, &opts).unwrap();
            println!("READY");
            let _ = rx.recv();
            hang();
        }
        // Forbid membarrier, then echo as "echo-park" does (every wait a futex sleep).
        "echo-park-no-membarrier" => {
            forbid_membarrier();
            let opts = opts.wait_strategy(shmchan::WaitStrategy::Park);
            let rx = shmchan::spsc::Receiver::<Msg>::open(&format!("{name}-ping"), &opts).unwrap();
            let tx = shmchan::spsc::Sender::<Msg>::open(&format!("{name}-pong"), &opts).unwrap();
            println!("READY");
            while let Ok(m) = rx.recv() {
                tx.send(m).unwrap();
            }
        }
        // Create SHMCHAN_TEST_N channels `<name>-<i>` (senders), then hang until killed: they
        // are abandoned.
        "abandon-many" => {
            let keep: Vec<_> = (0..n)
                .map(|i| {
                    shmchan::spsc::Sender::<Msg>::create(&format!("{name}-{i}"), &opts).unwrap()
                })
                .collect();
            println!("READY {}", keep.len());
            hang();
        }
        // Try to create `<name>-<i>` for i in 0..n, in order, as fast as possible; keep what
        // was won and print it; then hang until killed.
        "create-race" => {
            let mut won = Vec::new();
            let mut keep = Vec::new();
            println!("READY");
            let go = std::env::var("SHMCHAN_TEST_GO").unwrap();
            while !std::path::Path::new(&go).exists() {
                std::thread::sleep(Duration::from_micros(20));
            }
            for i in 0..n {
                match shmchan::spsc::Sender::<Msg>::create(&format!("{name}-{i}"), &opts) {
                    Ok(tx) => {
                        won.push(i.to_string());
                        keep.push(tx);
                    }
                    Err(shmchan::Error::AlreadyExists { .. }) => {}
                    Err(e) => panic!("create {name}-{i}: {e}"),
                }
            }
            println!("WON {}", won.join(" "));
            hang();
        }
        // For SHMCHAN_TEST_MS milliseconds: create the channel (capacity 8) and drop it again,
        // as fast as possible; print how many times it was created.
        "churn-create" => {
            let until = Instant::now() + Duration::from_millis(env_u64("SHMCHAN_TEST_MS", 1000));
            let opts = opts.capacity(8).open_timeout(Duration::from_secs(5));
            println!("READY");
            let mut made = 0u64;
            while Instant::now() < until {
                match shmchan::spsc::Sender::<Msg>::create(&name, &opts) {
                    Ok(tx) => {
                        made += 1;
                        drop(tx);
                    }
                    Err(shmchan::Error::AlreadyExists { .. }) => {}
                    Err(e) => panic!("create: {e}"),
                }
            }
            println!("MADE {made}");
        }
        // Open MPMC senders and drop them, for ever (to be killed at a random instant).
        "attach-churn" => {
            println!("READY");
            loop {
                let tx = shmchan::mpmc::Sender::<Msg>::open(&name, &opts).unwrap();
                drop(tx);
            }
        }
        // Create the sender with mode SHMCHAN_TEST_MODE (octal), wait for the receiver, send
        // 1, and leave (first).
        "user-create-send" => {
            let mode =
                u32::from_str_radix(&std::env::var("SHMCHAN_TEST_MODE").unwrap(), 8).unwrap();
            let tx = shmchan::spsc::Sender::<Msg>::create(&name, &opts.mode(mode)).unwrap();
            println!("READY");
            tx.wait_for_peer(Duration::from_secs(10)).unwrap();
            tx.send(Msg::new(1)).unwrap();
            println!("SENT");
        }
        // Open the receiver, take the message, and leave once the sender has left (last).
        "user-recv" => {
            let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            assert_eq!(rx.recv().unwrap(), Msg::new(1));
            assert!(rx.recv().is_err(), "then the sender leaves");
            drop(rx);
            println!("LEFT");
        }
        // Create the channel with mode SHMCHAN_TEST_MODE, open its other end, pass a message,
        // leave; print the error instead if create fails.
        "user-create-roundtrip" => {
            let mode =
                u32::from_str_radix(&std::env::var("SHMCHAN_TEST_MODE").unwrap(), 8).unwrap();
            match shmchan::spsc::Sender::<Msg>::create(&name, &opts.clone().mode(mode)) {
                Ok(tx) => {
                    let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
                    tx.send(Msg::new(5)).unwrap();
                    assert_eq!(rx.recv().unwrap(), Msg::new(5));
                    println!("ROUNDTRIP ok");
                }
                Err(e) => println!("ROUNDTRIP {e}"),
            }
        }
        // Wait for the file SHMCHAN_TEST_GO, then try once to create the channel (capacity
        // SHMCHAN_TEST_CAP, mode SHMCHAN_TEST_MODE): print WON and hang until killed, or LOST.
        "create-once" => {
            let mode =
                u32::from_str_radix(&std::env::var("SHMCHAN_TEST_MODE").unwrap(), 8).unwrap();
            let go = std::env::var("SHMCHAN_TEST_GO").unwrap();
            println!("READY");
            while !std::path::Path::new(&go).exists() {
                std::thread::sleep(Duration::from_micros(20));
            }
            let opts = opts.mode(mode).open_timeout(Duration::from_secs(10));
            match shmchan::spsc::Sender::<Msg>::create(&name, &opts) {
                Ok(_tx) => {
                    println!("WON");
                    hang();
                }
                Err(shmchan::Error::AlreadyExists { .. }) => println!("LOST"),
                Err(e) => println!("LOST {e}"),
            }
        }
        // In directory SHMCHAN_TEST_BASE, create a channel in the File backend's relative
        // directory "rel", change directory to "/", and drop it.
        "chdir-drop" => {
            std::env::set_current_dir(std::env::var("SHMCHAN_TEST_BASE").unwrap()).unwrap();
            let opts = opts.backend(Backend::File(PathBuf::from("rel")));
            let tx = shmchan::spsc::Sender::<Msg>::create(&name, &opts).unwrap();
            std::env::set_current_dir("/").unwrap();
            drop(tx);
            println!("DONE");
        }
        other => panic!("unknown child role {other}"),
    }
}

/// What a broadcast subscriber child (`bc-sub`, `bc-frame-sub`) reported on its `RESULT` line:
/// received, lagged, torn, evicted (1 or 0), first value, next value expected.
#[derive(Debug)]
pub struct SubReport {
    pub received: u64,
    pub lagged: u64,
    pub torn: u64,
    pub evicted: bool,
    pub next: u64,
}

/// Wait (at most 10 s) for a subscriber child's `RESULT` line.
pub fn sub_report(child: &Peer) -> SubReport {
    let line = child.expect_line("RESULT", std::time::Duration::from_secs(10));
    let f: Vec<u64> = line.split(' ').map(|s| s.parse().unwrap()).collect();
    SubReport {
        received: f[0],
        lagged: f[1],
        torn: f[2],
        evicted: f[3] == 1,
        next: f[5],
    }
}
