//! A small harness for the command's tests: unique names, every backend, peer processes (this
//! test binary re-executed in a role), the `shmchan` binary run to completion, and cleanup
//! that runs even when a test fails.
#![allow(dead_code)]
// Test code, not the library: plain std atomics are right here.
#![allow(clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use shmchan::{Backend, Options};

pub const SHORT: Duration = Duration::from_secs(20);

/// The message the peers send: `check` derives from `seq`, so a garbled one is seen.
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
            check: seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234_5678,
        }
    }
}

/// `gc` on POSIX and System V scans the whole system: tests that gc there, or that rely on an
/// abandoned channel staying until they look, take this lock so that they do not remove each
/// other's channels.
pub fn gc_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmchan-test-cli-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory for the File backend, removed with its contents when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shmchan-test-clidir-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
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

/// Every backend; the File directory lives as long as the returned value.
pub fn backends() -> (TempDir, Vec<Backend>) {
    let dir = TempDir::new();
    let list = vec![Backend::Posix, Backend::SysV, Backend::File(dir.0.clone())];
    (dir, list)
}

/// The `--backend` spelling.
pub fn arg(b: &Backend) -> String {
    match b {
        Backend::SysV => "sysv".into(),
        Backend::File(d) => format!("file:{}", d.display()),
        _ => "posix".into(),
    }
}

fn decode(s: &str) -> Backend {
    match s {
        "posix" => Backend::Posix,
        "sysv" => Backend::SysV,
        f => Backend::File(PathBuf::from(f.strip_prefix("file:").unwrap())),
    }
}

/// Does anything named `name` exist on `backend`?
pub fn exists(name: &str, backend: &Backend) -> bool {
    match backend {
        Backend::SysV => {
            // SAFETY: plain system call; size 0 and no flags only look the key up.
            (unsafe { libc::shmget(Backend::sysv_key(name), 0, 0) }) != -1
        }
        Backend::File(dir) => dir.join(name).symlink_metadata().is_ok(),
        _ => Path::new("/dev/shm").join(name).exists(),
    }
}

/// Remove whatever is left under `name` (whether the test passed or not).
pub struct Cleanup(pub String, pub Backend);

impl Drop for Cleanup {
    fn drop(&mut self) {
        match &self.1 {
            Backend::SysV => {
                // SAFETY: plain system calls on the id the key names now.
                unsafe {
                    let id = libc::shmget(Backend::sysv_key(&self.0), 0, 0);
                    if id != -1 {
                        libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                    }
                }
            }
            Backend::File(dir) => {
                let _ = std::fs::remove_file(dir.join(&self.0));
            }
            _ => {
                let _ = std::fs::remove_file(Path::new("/dev/shm").join(&self.0));
            }
        }
    }
}

/// Write raw bytes as an object named `name` (another program's, or a damaged channel).
pub fn plant(name: &str, backend: &Backend, bytes: &[u8]) {
    match backend {
        Backend::SysV => {
            // SAFETY: a fresh segment of `bytes.len()` bytes, attached, filled, detached.
            unsafe {
                let id = libc::shmget(
                    Backend::sysv_key(name),
                    bytes.len(),
                    libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
                );
                assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
                let p = libc::shmat(id, std::ptr::null(), 0);
                assert_ne!(p as isize, -1);
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len());
                libc::shmdt(p);
            }
        }
        Backend::File(dir) => std::fs::write(dir.join(name), bytes).unwrap(),
        _ => std::fs::write(Path::new("/dev/shm").join(name), bytes).unwrap(),
    }
}

/// Overwrite 4 bytes at `offset` of the object `name` (a header word).
pub fn poke_u32(name: &str, backend: &Backend, offset: usize, value: u32) {
    match backend {
        Backend::SysV => {
            // SAFETY: the segment is at least a header long; 4 aligned bytes inside it are
            // written while no process of it runs (the test made it and holds no handle).
            unsafe {
                let id = libc::shmget(Backend::sysv_key(name), 0, 0);
                assert!(id >= 0);
                let p = libc::shmat(id, std::ptr::null(), 0);
                assert_ne!(p as isize, -1);
                p.cast::<u8>()
                    .add(offset)
                    .cast::<u32>()
                    .write_volatile(value);
                libc::shmdt(p);
            }
        }
        _ => {
            use std::os::unix::fs::FileExt;
            let path = match backend {
                Backend::File(dir) => dir.join(name),
                _ => Path::new("/dev/shm").join(name),
            };
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            f.write_all_at(&value.to_le_bytes(), offset as u64).unwrap();
        }
    }
}

/// Every byte of the object `name` (to check that looking changed none).
pub fn object_bytes(name: &str, backend: &Backend) -> Vec<u8> {
    match backend {
        Backend::SysV => {
            // SAFETY: the segment is attached read-only, `shm_segsz` bytes of it copied out
            // (a segment never changes size), then detached.
            unsafe {
                let id = libc::shmget(Backend::sysv_key(name), 0, 0);
                assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
                let mut ds: libc::shmid_ds = std::mem::zeroed();
                assert_eq!(libc::shmctl(id, libc::IPC_STAT, &mut ds), 0);
                let p = libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY);
                assert_ne!(p as isize, -1, "shmat: {}", std::io::Error::last_os_error());
                let v = std::slice::from_raw_parts(p.cast::<u8>(), ds.shm_segsz).to_vec();
                libc::shmdt(p);
                v
            }
        }
        Backend::File(dir) => std::fs::read(dir.join(name)).unwrap(),
        _ => std::fs::read(Path::new("/dev/shm").join(name)).unwrap(),
    }
}

/// What a finished `shmchan` run gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "shmchan failed: {}{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Run `shmchan ARGS` to completion (at most [`SHORT`]).
pub fn shmchan(args: &[&str]) -> Run {
    shmchan_as(None, args)
}

/// As [`shmchan`], as user `uid` if given.
pub fn shmchan_as(uid: Option<u32>, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmchan"));
    cmd.args(args);
    if let Some(uid) = uid {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(uid);
    }
    let out = wait_output(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run shmchan: {e}")),
    );
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wait_output(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(SHORT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: plain system call on the pid of our own child, not yet reaped.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("shmchan did not finish within {SHORT:?}");
        }
    }
}

/// A peer process: this test binary re-executed in a role (see [`child_main`]); killed and
/// reaped when dropped. Closing its standard input (dropping `stdin`) asks it to leave.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

pub fn spawn(role: &str, name: &str, backend: &Backend, env: &[(&str, String)]) -> Peer {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "child_main",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SHMCHAN_CLI_ROLE", role)
    .env("SHMCHAN_CLI_NAME", name)
    .env("SHMCHAN_CLI_BACKEND", arg(backend))
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdin = child.stdin.take();
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
    Peer {
        child,
        stdin,
        lines,
    }
}

impl Peer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for a line starting with `token`; returns the rest of it.
    pub fn expect(&self, token: &str) -> String {
        let until = Instant::now() + SHORT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // libtest may print "test child_main ... " ahead of the line.
                Ok(l) if l.contains(token) => {
                    let at = l.find(token).unwrap() + token.len();
                    return l[at..].trim().to_owned();
                }
                Ok(_) => {}
                Err(e) => panic!("peer did not print {token:?} within {SHORT:?}: {e:?}"),
            }
        }
    }

    /// Tell the peer to go on (a line on its standard input).
    pub fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn kill9(&mut self) {
        // SAFETY: plain system call on the pid of our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// Close its standard input (it leaves, dropping its handles) and wait for it to exit.
    pub fn finish(&mut self) {
        self.stdin = None;
        let until = Instant::now() + SHORT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "peer failed: {st}");
                return;
            }
            assert!(Instant::now() < until, "peer did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_stdin() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The peers' roles. `hold`: create the sender, send N, open a receiver in the same process
/// if RECV is set and receive R of them, print READY with its pid, then wait for its standard
/// input to close. `stream-send`/`stream-recv`: N messages, in order, checked.
/// `bcast-pub`/`bcast-sub`: a broadcast topic's publisher and a subscriber, driven by
/// commands on their standard input (see [`bcast_pub`], [`bcast_sub`]).
pub fn child_main() {
    let Ok(role) = std::env::var("SHMCHAN_CLI_ROLE") else {
        return;
    };
    let name = std::env::var("SHMCHAN_CLI_NAME").unwrap();
    let backend = decode(&std::env::var("SHMCHAN_CLI_BACKEND").unwrap());
    let opts = Options::new()
        .backend(backend)
        .capacity(env_u64("SHMCHAN_CLI_CAP", 16) as usize);
    let n = env_u64("SHMCHAN_CLI_N", 0);
    match role.as_str() {
        "hold-sender" => {
            let tx = shmchan::spsc::Sender::<Msg>::create(&name, &opts).unwrap();
            for i in 0..n {
                tx.send(Msg::new(i)).unwrap();
            }
            println!("READY {}", std::process::id());
            wait_for_stdin();
        }
        "hold-receiver" => {
            let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            for i in 0..n {
                assert_eq!(rx.recv().unwrap(), Msg::new(i));
            }
            println!("READY {}", std::process::id());
            wait_for_stdin();
        }
        "hold-both" => {
            let tx = shmchan::spsc::Sender::<Msg>::create(&name, &opts).unwrap();
            let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            for i in 0..n {
                tx.send(Msg::new(i)).unwrap();
            }
            println!("READY {}", std::process::id());
            wait_for_stdin();
            drop((tx, rx));
        }
        "stream-send" => {
            let tx = shmchan::spsc::Sender::<Msg>::create(&name, &opts).unwrap();
            println!("READY {}", std::process::id());
            for i in 0..n {
                tx.send(Msg::new(i)).unwrap();
            }
            println!("SENT {n}");
            wait_for_stdin();
        }
        "stream-recv" => {
            let rx = shmchan::spsc::Receiver::<Msg>::open(&name, &opts).unwrap();
            println!("READY {}", std::process::id());
            let mut next = 0u64;
            while let Ok(m) = rx.recv() {
                assert_eq!(
                    m,
                    Msg::new(next),
                    "message {next} lost, garbled or out of order"
                );
                next += 1;
            }
            println!("GOT {next}");
        }
        "bcast-pub" => bcast_pub(&name, &opts),
        "bcast-sub" => bcast_sub(&name, &opts),
        other => panic!("unknown role {other}"),
    }
}

/// The options of a broadcast topic from the environment: SHMCHAN_CLI_SUBS subscribers at most
/// (default 4); SHMCHAN_CLI_EVICT_MS set: Block mode, evicting after that many milliseconds (0:
/// never); unset: Overwrite.
fn bcast_opts(opts: &Options) -> Options {
    let opts = opts
        .clone()
        .max_subscribers(env_u64("SHMCHAN_CLI_SUBS", 4) as usize);
    match std::env::var("SHMCHAN_CLI_EVICT_MS") {
        Ok(ms) => {
            let ms: u64 = ms.parse().expect("SHMCHAN_CLI_EVICT_MS: milliseconds");
            opts.overflow(shmchan::broadcast::Overflow::Block {
                evict_after: (ms != 0).then(|| Duration::from_millis(ms)),
            })
        }
        Err(_) => opts,
    }
}

/// Lines of standard input, one command each, until it closes.
fn commands() -> impl Iterator<Item = String> {
    std::io::stdin().lock().lines().map_while(Result::ok)
}

/// Create the topic as its publisher, print `READY <pid>`, then for each line of standard
/// input: `send N` publishes the next N messages (`Msg::new(seq)`, seq counting from 0) and
/// prints `SENT <total>`. Leaves when standard input closes.
fn bcast_pub(name: &str, opts: &Options) {
    let mut tx = shmchan::broadcast::Publisher::<Msg>::create(name, &bcast_opts(opts)).unwrap();
    println!("READY {}", std::process::id());
    let mut seq = 0u64;
    for cmd in commands() {
        let n: u64 = match cmd.strip_prefix("send ") {
            Some(n) => n.trim().parse().expect("send N"),
            None => panic!("unknown command {cmd:?}"),
        };
        for _ in 0..n {
            tx.send(Msg::new(seq)).unwrap();
            seq += 1;
        }
        println!("SENT {seq}");
    }
}

/// Subscribe (at the latest message), print `READY <pid>`, then for each line of standard
/// input: `recv N` receives until N messages came (each checked: in order, not garbled),
/// printing `LAGGED n` for each lag and `EVICTED` (then stopping) if evicted, then
/// `GOT <messages> LAGGED <total lost>`; `drain` receives what is there without waiting, then
/// prints the same line. Leaves when standard input closes.
fn bcast_sub(name: &str, opts: &Options) {
    use shmchan::broadcast::{Subscriber, TryRecvError};
    let mut rx = Subscriber::<Msg>::open(name, &bcast_opts(opts)).unwrap();
    println!("READY {}", std::process::id());
    // Each message checked: not garbled, and after the one before (the library's own tests
    // check the exact counts of lags; here they only have to add up in what `stat` shows).
    let mut last: Option<u64> = None;
    let mut check = |m: Msg| {
        assert_eq!(m, Msg::new(m.seq), "garbled message");
        assert!(last.is_none_or(|l| m.seq > l), "{} after {last:?}", m.seq);
        last = Some(m.seq);
    };
    let mut lost_total = 0u64;
    for cmd in commands() {
        let mut got = 0u64;
        let mut evicted = false;
        if let Some(n) = cmd.strip_prefix("recv ") {
            let n: u64 = n.trim().parse().expect("recv N");
            while got < n {
                match rx.recv() {
                    Ok(m) => {
                        check(m);
                        got += 1;
                    }
                    Err(shmchan::broadcast::RecvError::Lagged(k)) => {
                        println!("LAGGED {k}");
                        lost_total += k;
                    }
                    Err(shmchan::broadcast::RecvError::Evicted) => {
                        evicted = true;
                        break;
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
        } else if cmd == "drain" {
            loop {
                match rx.try_recv() {
                    Ok(m) => {
                        check(m);
                        got += 1;
                    }
                    Err(TryRecvError::Lagged(k)) => {
                        println!("LAGGED {k}");
                        lost_total += k;
                    }
                    Err(TryRecvError::Evicted) => {
                        evicted = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(e) => panic!("try_recv: {e}"),
                }
            }
        } else {
            panic!("unknown command {cmd:?}");
        }
        if evicted {
            println!("EVICTED");
        }
        println!("GOT {got} LAGGED {lost_total}");
    }
}
